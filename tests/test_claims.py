import json
import math

import pytest

from implicitrank.experiments import check, check_close, check_order_of_magnitude, not_run, write_claims


def test_claims_pass_and_fail_by_their_tolerance():
    assert check_close("c", 1.0, 1.04, rel=0.05).status == "pass"
    assert check_close("c", 1.0, 1.2, rel=0.05).status == "fail"
    assert check_order_of_magnitude("e", 2.58e-5, 9e-5).status == "pass"
    assert check_order_of_magnitude("e", 2.58e-5, 3e-3).status == "fail"
    assert check("ordering", "a < b", 3.0, "strict", holds=False).status == "fail"


def test_a_missing_number_never_passes():
    assert check("c", 1.0, math.nan, "any", holds=True).status == "fail"
    assert check("c", 1.0, None, "any", holds=True).status == "fail"


def test_claims_files_report_failures_and_not_run(tmp_path):
    claims = [check_close("good", 1.0, 1.0, 0.1), check_close("bad", 1.0, 2.0, 0.1),
              not_run("movielens", 1.40, "needs --data")]
    write_claims(tmp_path, "demo-exp", "test", claims)
    data = json.loads((tmp_path / "claims.json").read_text())
    assert [c["status"] for c in data["claims"]] == ["pass", "fail", "not run"]
    assert [c["passed"] for c in data["claims"]] == [True, False, False]
    md = (tmp_path / "claims.md").read_text()
    assert "1 passed, 1 failed, 1 not run" in md and "| bad | 1 | 2 | within 10% | fail |" in md


def test_bad_status_is_rejected():
    from implicitrank.experiments import Claim

    with pytest.raises(ValueError, match="status"):
        Claim("c", "1", "1", "-", "maybe")
