"""Local data: a site's CSV is read under its declared schema, and anything malformed is a named refusal.

Every refusal is a LocalDataError whose message is one line naming the file, the column or
data rows and what is wrong, and never a cell's value (the message goes to the coordinator).
"""

import csv
import os
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from fedgov.datasets import Dataset, load_split
from fedgov.local_data import MAX_ROW_BYTES, DataSchema, Feature, LocalDataError, load_csv, schema_for, write_csv
from governance.errors import FedgovError, PolicyError, UsageError

NODE_TOML = """
[data]
path = "patients.csv"

[data.schema]
label = "diagnosis"
labels = ["benign", "malignant"]
max-bad-fraction = 0.25

[data.schema.features]
age = "int"
weight = "float"
"""
SOURCE = "node.toml [data.schema]"
SCHEMA = DataSchema.from_mapping(tomllib.loads(NODE_TOML)["data"]["schema"], SOURCE)
STRICT = DataSchema(SCHEMA.features, SCHEMA.label, SCHEMA.labels)  # no bad rows tolerated
GOOD = "age,weight,diagnosis\n41,70.5,benign\n63,82.25,malignant\n"


def csv_file(tmp_path, content, name="patients.csv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def refusal(tmp_path, content, schema=STRICT) -> str:
    with pytest.raises(LocalDataError) as caught:
        load_csv(csv_file(tmp_path, content), schema)
    return str(caught.value)


def schema_error(**changes) -> str:
    table = tomllib.loads(NODE_TOML)["data"]["schema"]
    table.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del table[key]
    with pytest.raises(UsageError) as caught:
        DataSchema.from_mapping(table, SOURCE)
    return str(caught.value)


# -- the schema -------------------------------------------------------------------------------

def test_a_schema_reads_from_the_nodes_toml_table():
    assert SCHEMA == DataSchema((Feature("age", "int"), Feature("weight", "float")), "diagnosis",
                                ("benign", "malignant"), max_bad_fraction=0.25)


def test_a_schema_tolerates_no_bad_rows_and_keeps_examples_flat_by_default():
    schema = DataSchema.from_mapping(
        {"features": {"a": "float"}, "label": "y", "labels": ["0", "1"]}, SOURCE)
    assert (schema.max_bad_fraction, schema.shape) == (0.0, None)


def test_a_schema_round_trips_through_its_toml_table():
    for schema in (SCHEMA, schema_for("digits")):
        assert DataSchema.from_mapping(schema.to_mapping(), SOURCE) == schema


@pytest.mark.parametrize("changes, message", [
    ({"label": None}, "key 'label' is missing; e.g. label = \"diagnosis\""),
    ({"features": {}}, "key 'features' must be a table of at least one column; declare each feature column "
                       "and its type, e.g. features = { age = \"int\", weight = \"float\" }"),
    ({"features": {"age": "integer"}}, "features.age must be \"float\" or \"int\", got 'integer'"),
    ({"label": "age"}, "key 'label' names 'age', which is also a feature; a column is a feature or the label, "
                       "not both"),
    ({"labels": "benign"}, "key 'labels' must be a list of non-empty strings; list the label values as written "
                           "in the CSV, e.g. labels = [\"benign\", \"malignant\"]"),
    ({"labels": [0, 1]}, "key 'labels' must be a list of non-empty strings; list the label values as written "
                         "in the CSV, e.g. labels = [\"benign\", \"malignant\"]"),
    ({"labels": ["benign"]}, "key 'labels' must list at least two values, every class of the federation"),
    ({"labels": ["benign", "malignant", "benign"]}, "key 'labels' lists 'benign' twice; each label value "
                                                    "appears once"),
    ({"max-bad-fraction": 1.0}, "key 'max-bad-fraction' must be a number from 0 up to (not including) 1, the "
                                "share of rows with NaN, Inf or empty features that may be dropped; e.g. 0.01"),
    ({"max-bad-fraction": True}, "key 'max-bad-fraction' must be a number from 0 up to (not including) 1, the "
                                 "share of rows with NaN, Inf or empty features that may be dropped; e.g. 0.01"),
    ({"shape": [2, 0]}, "key 'shape' must be a list of whole numbers > 0, e.g. shape = [1, 8, 8]"),
    ({"shape": [1, 3]}, "key 'shape' [1, 3] holds 3 values but the schema declares 2 features; their counts "
                        "must match"),
    ({"path": "x.csv"}, "unknown key 'path'; a schema has the keys features, label, labels, max-bad-fraction, "
                        "shape"),
], ids=["no-label", "no-features", "bad-type", "label-is-feature", "labels-not-list", "labels-not-strings",
        "one-label", "label-twice", "fraction-1", "fraction-bool", "shape-zero", "shape-count", "unknown-key"])
def test_a_bad_schema_is_a_usage_error_naming_the_key(changes, message):
    assert schema_error(**changes) == f"{SOURCE}: {message}"


def test_the_bundled_datasets_have_schemas_and_others_do_not():
    assert len(schema_for("breast-cancer").features) == 30
    assert schema_for("digits").labels == tuple("0123456789")
    with pytest.raises(UsageError, match="unknown dataset 'mnist'"):
        schema_for("mnist")


# -- a good file ------------------------------------------------------------------------------

def test_a_good_csv_loads_as_float32_features_and_label_indices(tmp_path):
    data = load_csv(csv_file(tmp_path, GOOD), SCHEMA)
    assert (data.name, data.num_classes, data.x.dtype, data.y.dtype) == ("patients.csv", 2, np.float32, np.int64)
    assert data.x.tolist() == [[41.0, 70.5], [63.0, 82.25]]
    assert data.y.tolist() == [0, 1]


def test_extra_columns_are_ignored_and_column_order_is_the_headers(tmp_path):
    data = load_csv(csv_file(tmp_path, "id,diagnosis,weight,notes,age\n7,malignant,82.25,x,63\n"), SCHEMA)
    assert (data.x.tolist(), data.y.tolist()) == ([[63.0, 82.25]], [1])


def test_a_byte_order_mark_crlf_line_ends_and_blank_lines_are_read_as_plain_csv(tmp_path):
    content = b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode() + b"\r\n\r\n"
    assert load_csv(csv_file(tmp_path, content), SCHEMA).x.tolist() == [[41.0, 70.5], [63.0, 82.25]]


def test_spaces_around_numbers_are_allowed_but_labels_match_exactly(tmp_path):
    assert load_csv(csv_file(tmp_path, "age,weight,diagnosis\n 41 ,\t70.5,benign\n"), SCHEMA).x.tolist() == [[41, 70.5]]
    assert refusal(tmp_path, "age,weight,diagnosis\n41,70.5, benign\n") == (
        "patients.csv: column 'diagnosis' holds labels the schema does not list in data row 1; "
        "allowed: 'benign', 'malignant'")


@pytest.mark.parametrize("dataset", ["breast-cancer", "digits"])
def test_a_bundled_dataset_round_trips_through_csv_exactly(tmp_path, dataset):
    pool, _ = load_split(dataset, 42)
    path = tmp_path / f"{dataset}.csv"
    write_csv(path, pool, schema_for(dataset))
    back = load_csv(path, schema_for(dataset))
    assert back.x.shape == pool.x.shape and back.x.dtype == np.float32
    assert np.array_equal(back.x, pool.x) and np.array_equal(back.y, pool.y)
    assert back.num_classes == pool.num_classes


def test_digits_load_in_the_shape_their_model_takes(tmp_path):
    import torch

    from fedgov.models import build_model

    pool, _ = load_split("digits", 42)
    write_csv(tmp_path / "d.csv", Dataset("digits", pool.x[:5], pool.y[:5], 10), schema_for("digits"))
    back = load_csv(tmp_path / "d.csv", schema_for("digits"))
    assert back.x.shape == (5, 1, 8, 8)
    assert build_model("digits")(torch.from_numpy(back.x)).shape == (5, 10)


def test_a_written_csv_is_readable_by_its_owner_only(tmp_path):
    pool, _ = load_split("breast-cancer", 42)
    write_csv(tmp_path / "b.csv", pool, schema_for("breast-cancer"))
    assert os.stat(tmp_path / "b.csv").st_mode & 0o777 == 0o600


def test_writing_a_dataset_under_a_schema_it_does_not_fit_is_refused(tmp_path):
    pool, _ = load_split("digits", 42)
    with pytest.raises(UsageError, match="dataset 'digits' has 64 features, the schema declares 30"):
        write_csv(tmp_path / "x.csv", pool, schema_for("breast-cancer"))
    assert not (tmp_path / "x.csv").exists()


# -- what is checked: each failure, its line ---------------------------------------------------

def test_a_missing_column_is_named(tmp_path):
    assert refusal(tmp_path, "age,diagnosis\n41,benign\n") == (
        "patients.csv: the header lacks the schema's column 'weight' (it has 2 columns; names must match exactly)")


def test_several_missing_columns_are_named(tmp_path):
    assert refusal(tmp_path, "Age,Weight,Diagnosis\n41,70.5,benign\n") == (
        "patients.csv: the header lacks the schema's columns 'age', 'weight', 'diagnosis' "
        "(it has 3 columns; names must match exactly)")


def test_text_in_a_float_column_is_a_wrong_type(tmp_path):
    assert refusal(tmp_path, "age,weight,diagnosis\n41,heavy,benign\n50,60,benign\n52,1_0,benign\n") == (
        "patients.csv: column 'weight' (float) must hold decimal numbers (float32 range), not so in data rows 1, 3")


def test_a_fraction_in_an_int_column_is_a_wrong_type(tmp_path):
    assert refusal(tmp_path, "age,weight,diagnosis\n41.5,70,benign\n") == (
        "patients.csv: column 'age' (int) must hold whole numbers (int64 range), not so in data row 1")


def test_numbers_beyond_float32_or_int64_are_wrong_types(tmp_path):
    assert refusal(tmp_path, "age,weight,diagnosis\n1,1e39,benign\n") == (
        "patients.csv: column 'weight' (float) must hold decimal numbers (float32 range), not so in data row 1")
    assert refusal(tmp_path, "age,weight,diagnosis\n9223372036854775808,1,benign\n") == (
        "patients.csv: column 'age' (int) must hold whole numbers (int64 range), not so in data row 1")


def test_wrong_types_in_many_rows_and_columns_name_a_few_and_count_the_rest(tmp_path):
    rows = "".join(f"x{i},y,benign\n" for i in range(10))
    assert refusal(tmp_path, "age,weight,diagnosis\n" + rows) == (
        "patients.csv: column 'age' (int) must hold whole numbers (int64 range), not so in data rows 1, 2, 3 "
        "and 7 more; so does column 'weight'")


def test_an_unknown_label_is_refused_naming_the_allowed_ones(tmp_path):
    assert refusal(tmp_path, "age,weight,diagnosis\n41,70,benign\n42,71,Benign\n43,72,\n") == (
        "patients.csv: column 'diagnosis' holds labels the schema does not list in data rows 2, 3; "
        "allowed: 'benign', 'malignant'")


def test_a_ragged_row_is_refused(tmp_path):
    assert refusal(tmp_path, "age,weight,diagnosis\n41,70,benign\n42,71\n") == (
        "patients.csv: data row 2 has 2 fields, the header has 3")


def test_broken_quoting_is_refused(tmp_path):
    assert refusal(tmp_path, 'age,weight,diagnosis\n41,"70"x,benign\n') == (
        "patients.csv: data row 1 is not valid CSV (',' expected after '\"')")


# -- NaN, Inf and missing values ---------------------------------------------------------------

def bad_rows(bad: int, total: int) -> str:
    return "age,weight,diagnosis\n" + "".join(
        f"{i},{'nan' if i < bad else 70},benign\n" for i in range(total))


def test_nan_inf_and_empty_values_make_a_row_bad(tmp_path):
    assert refusal(tmp_path, "age,weight,diagnosis\n1,NaN,benign\n2,-inf,benign\n,3,benign\n4,5,benign\n") == (
        "patients.csv: 3 of 4 data rows (75.0%) have NaN, Inf or empty feature values (data rows 1, 2, 3), "
        "over max-bad-fraction = 0")


def test_a_bad_share_just_over_the_limit_is_refused(tmp_path):
    assert refusal(tmp_path, bad_rows(26, 100), SCHEMA) == (
        "patients.csv: 26 of 100 data rows (26.0%) have NaN, Inf or empty feature values "
        "(data rows 1, 2, 3 and 23 more), over max-bad-fraction = 0.25")


def test_a_bad_share_at_the_limit_is_dropped(tmp_path):
    data = load_csv(csv_file(tmp_path, bad_rows(25, 100)), SCHEMA)
    assert len(data) == 75 and data.x[:, 0].tolist() == list(range(25, 100))
    assert np.isfinite(data.x).all()


# -- empty data -------------------------------------------------------------------------------

def test_an_empty_file_is_refused(tmp_path):
    assert refusal(tmp_path, b"") == (
        "patients.csv: the file is empty; it needs a header line naming the columns, then data rows")


def test_a_header_without_rows_is_refused(tmp_path):
    assert refusal(tmp_path, "age,weight,diagnosis\n\n\n") == (
        "patients.csv: the header is there but no data rows follow")


def test_a_blank_first_line_is_refused(tmp_path):
    assert refusal(tmp_path, "\n" + GOOD) == (
        "patients.csv: line 1 is blank; the first line must be the header naming the columns")


# -- hostile input ----------------------------------------------------------------------------

def test_bytes_that_are_not_utf8_are_refused_naming_the_row(tmp_path):
    assert refusal(tmp_path, GOOD.encode() + "50,60,b\xe9nin\n".encode("latin-1")) == (
        "patients.csv: data row 3 is not UTF-8 text; save the file as UTF-8 (\"CSV UTF-8\")")


def test_a_utf16_file_is_refused_as_not_utf8(tmp_path):
    assert refusal(tmp_path, GOOD.encode("utf-16")) == (
        "patients.csv: the header is not UTF-8 text; save the file as UTF-8 (\"CSV UTF-8\")")


def test_a_nul_byte_is_refused(tmp_path):
    assert refusal(tmp_path, GOOD.encode() + b"1,2\x00,benign\n") == (
        "patients.csv: data row 3 holds a NUL byte, which UTF-8 CSV text never does")


def test_a_10_mb_field_is_refused_without_reading_it_whole(tmp_path):
    assert refusal(tmp_path, GOOD + "1," + "9" * 10_000_000 + ",benign\n") == (
        f"patients.csv: data row 3 is longer than {MAX_ROW_BYTES} bytes; no CSV row of numbers is")


@pytest.mark.parametrize("field_limit, reason", [
    (131_072, "is not valid CSV (field larger than field limit (131072))"),  # the csv module's default
    (sys.maxsize, f"is longer than {MAX_ROW_BYTES} bytes; no CSV row of numbers is"),
], ids=["csv-default-limit", "csv-limit-raised"])
def test_a_10_mb_quoted_field_over_many_lines_is_refused_whatever_the_csv_field_limit(tmp_path, field_limit, reason):
    before = csv.field_size_limit(field_limit)  # process-wide: another module may have raised it
    try:
        message = refusal(tmp_path, GOOD + '1,2,"' + "benign\n" * 1_500_000 + '"\n')
        assert message == f"patients.csv: data row 3 {reason}"
    finally:
        csv.field_size_limit(before)


def test_a_header_naming_a_column_twice_is_refused(tmp_path):
    assert refusal(tmp_path, "age,weight,diagnosis,weight\n41,70,benign,71\n") == (
        "patients.csv: the header names column 'weight' twice (columns 2 and 4); column names must be unique")


def test_a_long_duplicate_header_name_is_quoted_short(tmp_path):
    name = "n" * 100_000
    assert refusal(tmp_path, f"age,weight,diagnosis,{name},{name}\n1,2,benign,3,4\n") == (
        f"patients.csv: the header names column {'n' * 40!r}... twice (columns 4 and 5); column names must be unique")


def test_a_missing_file_and_a_directory_are_refused(tmp_path):
    with pytest.raises(LocalDataError, match="^nowhere.csv: cannot read the data file: no such file$"):
        load_csv(tmp_path / "nowhere.csv", SCHEMA)
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(LocalDataError, match="^dir.csv: cannot read the data file: not a regular file$"):
        load_csv(tmp_path / "dir.csv", SCHEMA)


def test_a_refusal_names_the_file_not_its_directory_and_never_quotes_a_cell(tmp_path):
    message = refusal(tmp_path, "age,weight,diagnosis\n41,Jane Doe,benign\n42,70,Jane Doe\n")
    assert message.startswith("patients.csv: ") and str(tmp_path) not in message
    assert "Jane" not in message


def test_a_refusal_is_a_fedgov_error_but_neither_a_policy_nor_a_usage_error():
    assert issubclass(LocalDataError, FedgovError)
    assert not issubclass(LocalDataError, (PolicyError, UsageError))


def test_the_schema_in_the_deployment_guide_reads():
    guide = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    blocks = [block.split("```", 1)[0] for block in guide.split("```toml\n")[1:]]
    [example] = [block for block in blocks if block.lstrip().startswith("[data.schema]")]
    schema = DataSchema.from_mapping(tomllib.loads(example)["data"]["schema"], "docs/deployment.md")
    assert schema.feature_names == ("age", "weight", "mean radius")
    assert (schema.labels, schema.max_bad_fraction) == (("benign", "malignant"), 0.01)
