import pandas as pd
import pytest

from linpert import Condition, canonical_names, condition_table, parse_condition
from linpert._conditions import require_control


@pytest.mark.parametrize(
    ("raw", "name", "genes", "kind"),
    [
        ("ctrl", "ctrl", (), "control"),
        ("KLF1+ctrl", "KLF1+ctrl", ("KLF1",), "single"),
        ("ctrl+KLF1", "KLF1+ctrl", ("KLF1",), "single"),
        ("CEBPE+CEBPB", "CEBPE+CEBPB", ("CEBPE", "CEBPB"), "double"),  # written order kept
        ("A+B+C", "A+B+C", ("A", "B", "C"), "combination"),
        (" SET+ctrl ", "SET+ctrl", ("SET",), "single"),
        ("HLA-A+ctrl", "HLA-A+ctrl", ("HLA-A",), "single"),
    ],
)
def test_parse_condition(raw, name, genes, kind):
    cond = parse_condition(raw)
    assert cond == Condition(name, genes)
    assert cond.kind == kind
    assert cond.is_control == (kind == "control")


def test_gears_prediction_keys():
    assert parse_condition("AHR_FEV", sep="_") == parse_condition("AHR+FEV")
    assert parse_condition("FEV", sep="_").name == "FEV+ctrl"


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("", "empty token"),
        ("A++B", "empty token"),
        ("A+", "empty token"),
        ("A B+ctrl", "not a gene symbol"),
        ("A+A", "same gene twice"),
        ("A+ctrl+ctrl", "more than one 'ctrl'"),
        ("ctrl+ctrl", "more than one 'ctrl'"),  # as for A+ctrl+ctrl: never silently pooled into ctrl
        ("nan", "reads as a missing value"),  # a missing condition cast to text is not a perturbation
        ("NaN+ctrl", "reads as a missing value"),
        ("A+None", "reads as a missing value"),
        ("NA", "reads as a missing value"),
    ],
)
def test_parse_condition_errors(raw, match):
    with pytest.raises(ValueError, match=match):
        parse_condition(raw)


def test_parse_condition_rejects_non_strings():
    with pytest.raises(TypeError, match="must be a string"):
        parse_condition(float("nan"))


def test_canonical_names_merges_orders_only_where_both_appear():
    mapping = canonical_names(["ctrl", "ctrl+A", "A+ctrl", "B+A", "A+B", "D+C", "D+C"])
    assert mapping.to_dict() == {
        "ctrl": "ctrl",
        "ctrl+A": "A+ctrl",
        "A+ctrl": "A+ctrl",
        "B+A": "A+B",  # both orders written: merged under the sorted order
        "A+B": "A+B",
        "D+C": "D+C",  # one order written: kept, so published splits reproduce
    }
    assert list(mapping.index) == ["ctrl", "ctrl+A", "A+ctrl", "B+A", "A+B", "D+C"]


def test_condition_table():
    table = condition_table(["ctrl", "A+ctrl", "A+B"])
    expected = pd.DataFrame(
        {"genes": [(), ("A",), ("A", "B")], "kind": ["control", "single", "double"], "n_genes": [0, 1, 2]},
        index=pd.Index(["ctrl", "A+ctrl", "A+B"], name="condition"),
    )
    pd.testing.assert_frame_equal(table, expected)


def test_require_control():
    require_control(["ctrl", "A+ctrl"])
    with pytest.raises(ValueError, match="No control cells in my data.*'ctrl'"):
        require_control(["A+ctrl"], what="my data")
