"""Built-in explainer plugins (registered in pyproject.toml under ``xaicli.explainers``)."""
