"""Readers of the text-classification application: user files, published files, splits, errors."""

import collections

import pytest

from applications.common.errors import UserError
from applications.text_classification import data


def write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


# === TSV and CSV files ===


def test_tsv_without_header_text_then_label(tmp_path):
    path = write(tmp_path / "d.tsv", "a gripping film\t1\na dull film\t0\nloved it\t1\n")
    result = data.read_table(path)
    assert result.texts == ["a gripping film", "a dull film", "loved it"]
    assert result.labels == ["1", "0", "1"]
    assert result.class_names == ["0", "1"]


def test_tsv_with_header_label_first_is_detected(tmp_path):
    lines = ["label\ttext"] + [f"{'spam' if i % 3 else 'ham'}\tmessage number {i} here" for i in range(9)]
    result = data.read_table(write(tmp_path / "d.tsv", "\n".join(lines)))
    assert len(result) == 9
    assert result.texts[0] == "message number 0 here"
    assert set(result.labels) == {"ham", "spam"}


def test_csv_with_quotes_and_named_columns(tmp_path):
    text = 'id,review,stars\n1,"great, really great",5\n2,"bad ""acting""",1\n3,fine,3\n'
    result = data.read_table(write(tmp_path / "d.csv", text), text_column="review", label_column="stars")
    assert result.texts == ["great, really great", 'bad "acting"', "fine"]
    assert result.labels == ["5", "1", "3"]


def test_csv_columns_by_index_and_bom(tmp_path):
    path = write(tmp_path / "d.csv", "\ufeffpos,nice one\nneg,awful\n")
    result = data.read_table(path, text_column=1, label_column=0)
    assert result.texts == ["nice one", "awful"] and result.labels == ["pos", "neg"]


def test_kaggle_spam_csv_with_its_blank_trailing_columns(tmp_path):
    # Kaggle's spam.csv: a `v1,v2,,,` header, latin-1, three trailing columns blank on most rows
    # (the fewest distinct values: they were taken for the labels) and filled on a few.
    rows = ["v1,v2,,,", 'ham,"Go until jurong point, crazy..",,,', "spam,Free entry: win \xa3100,,,",
            "ham,I\x92ll call you,,,", 'ham,"Sorry, I\x92ll call later", but later,, today,',
            "spam,WINNER!! claim your prize,,,"]
    path = write(tmp_path / "spam.csv", "\n".join(rows) + "\n", encoding="latin-1")
    whole = data.load_splits(str(path), encoding="latin-1").get("all")
    assert whole.labels == ["ham", "spam", "ham", "ham", "spam"]
    assert whole.texts[:3] == ["Go until jurong point, crazy..", "Free entry: win \xa3100", "I\x92ll call you"]


def test_table_file_holds_out_a_fixed_stratified_fifth(tmp_path):
    lines = [f"text {i}\t{'a' if i < 10 else 'b'}" for i in range(20)]
    path = write(tmp_path / "d.tsv", "\n".join(lines))
    splits = data.load_splits(str(path))
    assert splits.evaluation_split == "test"
    assert collections.Counter(splits.get("test").labels) == {"a": 2, "b": 2}
    assert len(splits.get("train")) == 16 and len(splits.get("all")) == 20
    assert data.load_splits(str(path)).get("test").texts == splits.get("test").texts


def test_unknown_column_name_is_a_user_error(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\nhello,a\n")
    with pytest.raises(UserError, match="no label column named 'stars'"):
        data.read_table(path, label_column="stars")


# === Folders of class folders ===


def test_class_folders_like_text_dataset_from_directory(tmp_path):
    write(tmp_path / "pos" / "a.txt", "a gripping film")
    write(tmp_path / "pos" / "more" / "b.txt", "loved it")
    write(tmp_path / "neg" / "c.txt", "a dull film")
    write(tmp_path / "neg" / "notes.md", "ignored: not .txt")
    result = data.load_splits(str(tmp_path)).get("all")
    assert result.class_names == ["neg", "pos"]
    assert collections.Counter(result.labels) == {"pos": 2, "neg": 1}
    assert "a gripping film" in result.texts


def test_class_folders_with_train_and_test_splits(tmp_path):
    for split in ("train", "test"):
        write(tmp_path / split / "pos" / "a.txt", f"{split} good")
        write(tmp_path / split / "neg" / "b.txt", f"{split} bad")
    splits = data.load_splits(str(tmp_path))
    assert splits.evaluation_split == "test"
    assert sorted(splits.get("test").texts) == ["test bad", "test good"]


def test_folder_without_class_folders_is_a_user_error(tmp_path):
    write(tmp_path / "a.txt", "loose file")
    with pytest.raises(UserError, match="no class folders"):
        data.load_splits(str(tmp_path))


# === Published formats, in small files ===


def test_sst2_folder(tmp_path):
    write(tmp_path / "train.tsv", "a gripping film\t1\na dull film\t0")
    write(tmp_path / "dev.tsv", "loved it\t1\n")
    splits = data.load_splits(str(tmp_path))
    assert splits.get("train").labels == ["positive", "negative"]
    assert splits.get("validation").texts == ["loved it"]
    assert splits.evaluation_split == "validation"
    assert len(splits.get("all")) == 3


def test_sst2_folder_as_glue_ships_it(tmp_path):
    # GLUE's SST-2: a header row in train.tsv and dev.tsv, and an unlabeled test.tsv.
    write(tmp_path / "train.tsv", "sentence\tlabel\nhide new secretions \t0\na gripping film \t1\n")
    write(tmp_path / "dev.tsv", "sentence\tlabel\nit 's a charming journey .\t1\n")
    write(tmp_path / "test.tsv", "index\tsentence\n0\tuneasy mishmash of styles\n")
    splits = data.load_splits(str(tmp_path))
    assert [text.strip() for text in splits.get("train").texts] == ["hide new secretions", "a gripping film"]
    assert splits.get("train").labels == ["negative", "positive"]
    assert splits.get("validation").labels == ["positive"] and len(splits.get("all")) == 3


def test_trec_file_latin1_coarse_and_fine(tmp_path):
    lines = [f"{'LOC:city' if i % 2 else 'HUM:ind'} Which city is n\xb0 {i} ?" for i in range(20)]
    path = write(tmp_path / "train_5500.label", "\n".join(lines), encoding="iso-8859-1")
    coarse = data.read_trec(tmp_path)
    assert set(coarse["all"].labels) == {"LOC", "HUM"}
    assert coarse["all"].texts[0] == "Which city is n\xb0 0 ?"
    assert len(coarse["test"]) == 2 and len(coarse["train"]) == 18
    assert set(data.read_trec_fine(path)["all"].labels) == {"LOC:city", "HUM:ind"}


def test_trec_folder_as_published_uses_the_whole_training_file_and_the_test_file(tmp_path):
    # The published folder: train_1000 ... train_4000 are the first lines of train_5500, and
    # TREC_10.label is the test set. Read together, the subsets would repeat questions.
    lines = [f"{('LOC:city', 'HUM:ind', 'NUM:date')[i % 3]} Question number {i} ?" for i in range(60)]
    write(tmp_path / "train_5500.label", "\n".join(lines))
    write(tmp_path / "train_1000.label", "\n".join(lines[:30]))
    write(tmp_path / "TREC_10.label", "LOC:city Where is Paris ?\nHUM:ind Who wrote Hamlet ?\n")
    splits = data.load_splits(str(tmp_path))
    assert splits.get("train").texts == [line.split(" ", 1)[1] for line in lines]
    assert splits.get("test").texts == ["Where is Paris ?", "Who wrote Hamlet ?"]
    assert splits.evaluation_split == "test" and len(splits.get("all")) == 62
    assert data.read_trec_fine(tmp_path)["test"].labels == ["LOC:city", "HUM:ind"]
    # Without train_5500, every other *.label file trains; without a test file, a tenth is held out.
    (tmp_path / "train_5500.label").unlink()
    assert len(data.read_trec(tmp_path)["train"]) == 30
    (tmp_path / "TREC_10.label").unlink()
    held_out = data.read_trec(tmp_path)
    assert len(held_out["test"]) == 3 and len(held_out["train"]) == 27
    (tmp_path / "train_1000.label").unlink()
    write(tmp_path / "TREC_10.label", "LOC:city Where is Paris ?\n")
    with pytest.raises(UserError, match="holds the test file TREC_10.label only: add train_5500.label"):
        data.load_splits(str(tmp_path))


def test_sms_mixed_encodings(tmp_path):
    raw = b"ham\tsee you at lunch\nspam\tWIN \xc2\xa3100 now\nspam\tcall \xa3 now\nham\tok\n"
    write(tmp_path / "SMSSpamCollection", raw)
    splits = data.read_sms_spam(tmp_path)
    assert splits["all"].texts == ["see you at lunch", "WIN \xa3100 now", "call \xa3 now", "ok"]
    assert collections.Counter(splits["test"].labels) == {"ham": 1, "spam": 1}


# === The real shipped files, through KERAS_ATTENTION_DATA ===


def test_real_sst2(data_dir):
    splits = data.load_splits("sst2")
    assert len(splits.get("train")) == 6920 and len(splits.get("validation")) == 872
    assert splits.get("train").class_names == ["negative", "positive"]
    assert collections.Counter(splits.get("train").labels) == {"positive": 3610, "negative": 3310}


def test_real_trec_held_out_tenth_is_stratified_and_fixed(data_dir):
    first, second = data.load_splits("trec"), data.load_splits("trec")
    train, test = first.get("train"), first.get("test")
    assert len(train) + len(test) == 5452
    assert len(test) == 546
    assert test.texts == second.get("test").texts  # Fixed: independent of any training seed.
    pairs = lambda d: collections.Counter(zip(d.texts, d.labels))  # noqa: E731
    assert pairs(train) + pairs(test) == pairs(first.get("all"))  # A partition of the file.
    counts_all = collections.Counter(first.get("all").labels)
    counts_test = collections.Counter(test.labels)
    assert sorted(counts_test) == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    for name, count in counts_all.items():
        assert abs(counts_test[name] - count / 10) <= 1
    assert len(data.load_splits("trec-fine").get("all").class_names) == 50


def test_real_sms_spam_stratified_80_20(data_dir):
    splits = data.load_splits("sms-spam")
    test = collections.Counter(splits.get("test").labels)
    assert len(splits.get("all")) == 5574
    assert test == {"ham": 965, "spam": 149}
    assert len(splits.get("train")) == 4460
    assert any("\xa3" in text for text in splits.get("all").texts)  # '£' decoded, not mojibake.


def test_named_data_set_missing_split_is_a_user_error(data_dir):
    with pytest.raises(UserError, match="no 'test' split"):
        data.load("sst2", "test")
    with pytest.raises(UserError, match="Unknown split"):
        data.load("sst2", "dev")


# === Bad inputs ===


def test_empty_file(tmp_path):
    with pytest.raises(UserError, match="is empty"):
        data.load_splits(str(write(tmp_path / "d.tsv", "\n\n")))


def test_undecodable_bytes_say_where(tmp_path):
    path = write(tmp_path / "d.tsv", b"good text\tpos\nbad \xff\xfe text\tneg\n")
    with pytest.raises(UserError, match=r"line 2: byte 0xff is not valid utf-8-sig text.*--encoding"):
        data.load_splits(str(path))
    assert data.load_splits(str(path), encoding="latin-1").get("all").texts[1] == "bad \xff\xfe text"


def test_line_without_label(tmp_path):
    path = write(tmp_path / "d.tsv", "a gripping film\t1\nno label on this line\n")
    with pytest.raises(UserError, match="line 2: no label"):
        data.load_splits(str(path))
    path = write(tmp_path / "d2.tsv", "a gripping film\t1\nempty label\t \n")
    with pytest.raises(UserError, match="line 2: no label"):
        data.load_splits(str(path))


def test_one_column_file(tmp_path):
    with pytest.raises(UserError, match="one column only"):
        data.load_splits(str(write(tmp_path / "d.tsv", "just text\nmore text\n")))


def test_bad_published_lines(tmp_path):
    write(tmp_path / "trec" / "x.label", "DESC:def What is a cat ?\nnot a label line\n")
    with pytest.raises(UserError, match="line 2: expected 'COARSE:fine question'"):
        data.load_splits(str(tmp_path / "trec"))
    write(tmp_path / "sms" / "SMSSpamCollection", "ham\thello\nspam without a tab\n")
    with pytest.raises(UserError, match="line 2: expected 'ham\\|spam<TAB>text'"):
        data.load_splits(str(tmp_path / "sms"))


def test_missing_path_and_unknown_name():
    with pytest.raises(UserError, match="not a known data set"):
        data.load_splits("no-such-data-set-or-file")
