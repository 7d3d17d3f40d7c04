from xaicli_telegram.cli import main

main()
