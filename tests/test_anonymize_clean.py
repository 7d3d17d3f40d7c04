"""Issue 14, points 5 and 6: clean-descriptors across charsets, name forms and date formats; dates,
times and date-times moved together under retain-long-modified-dates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pydicom
import pytest
from anonymize_fixtures import LEAK_PID, patient_file, runner

from xaicli.anonymize import dates
from xaicli.anonymize.identities import Keyed, date_forms
from xaicli.cli import app


def run(src: Path, out: Path, *options: str) -> pydicom.Dataset:
    args = [a for o in options for a in ("--option", o)]
    result = runner.invoke(app, ["dicom-anonymize", str(src), "-o", str(out), "--key", "k", *args])
    assert result.exit_code == 0, result.output
    (done,) = out.rglob("*.dcm")
    check = runner.invoke(app, ["dicom-anonymize", "--check", str(out), "--against", str(src), *args])
    assert check.exit_code == 0, check.output
    return pydicom.dcmread(done)


def test_clean_descriptors_masks_a_japanese_name_in_its_own_charset(tmp_path):
    src = tmp_path / "in"
    patient_file(src / "a.dcm", charset="\\ISO 2022 IR 87", name="Yamada^Tarou=山田^太郎=やまだ^たろう",
                 StudyDescription="山田太郎 胸部 Yamada", SeriesDescription="やまだ 正面")
    done = run(src, tmp_path / "out", "clean-descriptors")
    assert done.StudyDescription == "****** 胸部 ***"  # 山田, 太郎 and Yamada masked, the rest kept
    assert done.SeriesDescription == "*** 正面"
    assert "山田" not in str(done) and "Yamada" not in str(done)


def test_clean_descriptors_masks_short_parts_birth_and_other_names(tmp_path):
    src = tmp_path / "in"
    patient_file(src / "a.dcm", name="Wu^Li", OtherPatientNames="Brennock^Sal",
                 SeriesDescription="Li Wu: Little finger, left", StudyDescription="for Brennock, née Hartigan",
                 ImageComments=f"id {LEAK_PID}, was Hartigan^Jo")
    done = run(src, tmp_path / "out", "clean-descriptors")
    assert done.SeriesDescription == "*** ***: Little finger, left"  # whole words only
    assert done.StudyDescription == "for ***, née ***"
    assert done.ImageComments == "id ***, was ***^***"


@pytest.mark.parametrize("written", ["01.01.1970", "1990-09-09", "1970/01/02", "2 Jan 1970", "January 2, 1970",
                                     "02-Jan-70", "19700102", "1/2/1970"])
def test_clean_descriptors_masks_dates_as_people_write_them(tmp_path, written):
    src = tmp_path / "in"
    patient_file(src / "a.dcm", StudyDescription=f"CT 2 phases {written} follow-up")
    done = run(src, tmp_path / "out", "clean-descriptors")
    assert done.StudyDescription == "CT 2 phases *** follow-up"


def test_birth_date_forms():
    forms = date_forms("19700102")
    for written in ("1970-01-02", "02.01.1970", "2.1.1970", "01/02/1970", "2 jan 1970", "january 2, 1970", "02.01.70"):
        assert written in forms, written
    assert "1970-02-01" not in forms  # not a form of 2 January


def test_modified_dates_move_times_with_their_dates(tmp_path):
    src = tmp_path / "in"
    original = {"StudyDate": "20200115", "StudyTime": "101500", "SeriesDate": "20200115", "SeriesTime": "235959",
                "AcquisitionDateTime": "20200115235959.123456+0100", "ContentDate": "20200116"}
    patient_file(src / "a.dcm", **original)
    done = run(src, tmp_path / "out", "retain-long-modified-dates")
    shift = Keyed(b"k").shift(LEAK_PID)  # the patient's keyed offset: days back plus seconds
    assert shift.days < 0 and 0 < shift.seconds < 86400
    delta = dt.timedelta(days=shift.days, seconds=shift.seconds)

    def instant(day: str, time: str) -> dt.datetime:
        return dt.datetime.strptime(day + time[:6], "%Y%m%d%H%M%S")

    for day, time in (("StudyDate", "StudyTime"), ("SeriesDate", "SeriesTime")):
        assert instant(done[day].value, done[time].value) == instant(original[day], original[time]) + delta
    # 23:59:59 plus any positive seconds crosses midnight: the date moves one day more.
    assert done.SeriesDate == (dt.date(2020, 1, 15) + dt.timedelta(days=shift.days + 1)).strftime("%Y%m%d")
    assert done.StudyTime != original["StudyTime"]
    moved = dt.datetime.strptime(done.AcquisitionDateTime[:14], "%Y%m%d%H%M%S")
    assert moved == instant("20200115", "235959") + delta
    assert done.AcquisitionDateTime.endswith(".123456+0100")  # precision and zone kept
    # A date without its time moves by whole days: the interval to the study date is kept.
    assert done.ContentDate == (dt.date(2020, 1, 16) + dt.timedelta(days=shift.days)).strftime("%Y%m%d")
    assert done.LongitudinalTemporalInformationModified == "MODIFIED"


def test_time_and_datetime_forms():
    shift = dates.Shift(-1, 3600)
    assert dates.shift_time("2330", shift) == "0030"  # hour and minute precision kept
    assert dates.shift_time("23:30:15.5", shift) == "00:30:15.5"  # ACR-NEMA form kept
    assert dates.shift_pair("20200101", "233000", shift) == ("20200101", "003000")  # -1 day +1 across midnight
    assert dates.shift_datetime("2020", shift) == "2019"  # a year alone moves by the days
    assert dates.shift_datetime("202003010030", shift) == "202002290130"
    assert dates.shift_date("2020.03.01", shift) == "2020.02.29"
    assert dates.shift_date("20200101-20200131", shift) == "20191231-20200130"
    assert dates.shift_time("25", shift) is None and dates.shift_datetime("bad", shift) is None


def test_two_letter_name_parts_are_masked_in_text_but_leave_codes_alone(tmp_path):
    src = tmp_path / "in"
    patient_file(src / "a.dcm", name="Ma^No", SeriesDescription="No, Ma: knee", Laterality="L")
    done = run(src, tmp_path / "out", "clean-descriptors")
    assert done.SeriesDescription == "***, ***: knee"
    assert (done.BurnedInAnnotation, done.Modality, done.Laterality) == ("NO", "CR", "L")
