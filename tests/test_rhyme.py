import pytest

from charrnn import Vocab
from charrnn.form import Rhymes
from charrnn.rhyme import GROUPS, Chinese, English, chinese_group, english_key, scheme_for

# Characters of every group: the group's own example (GROUPS), and more of each final.
MEMBERS = {
    "发花": "家花", "梭波": "我歌", "乜斜": "月", "一七": "雨女知二", "姑苏": "书", "怀来": "快", "灰堆": "水",
    "遥条": "条", "油求": "就", "言前": "远", "人辰": "云问", "江阳": "光", "中东": "用熊",
}
LETTERS = set("abcdefghijklmnopqrstuvwxyz'")


def test_there_are_thirteen_groups_each_with_a_character_of_its_own():
    assert set(MEMBERS) == set(GROUPS) and len(GROUPS) == 13
    for name, (_, example) in GROUPS.items():
        assert chinese_group(example) == name


@pytest.mark.parametrize("group, chars", MEMBERS.items())
def test_chinese_group_of_characters(group, chars):
    for char in chars:
        assert chinese_group(char) == group, char


@pytest.mark.parametrize("char", ["a", "Z", "1", " ", "\u3000", "\n", "。", "！", "😀", "あ", ""])
def test_chinese_group_of_anything_but_han_is_none(char):
    assert chinese_group(char) is None


@pytest.mark.parametrize("line, group", [
    ("窗外的麻雀", "乜斜"),
    ("在电线杆上多嘴", "灰堆"),
    ("我爱你 \u3000！。,  ", "一七"),  # trailing spaces, ideographic spaces and punctuation are not the rhyme
    ("月光abc 123", "江阳"),
    ("光月", "乜斜"),  # the last character, not the first
])
def test_chinese_key_is_the_group_of_the_last_han_character(line, group):
    assert Chinese().key(line) == group


@pytest.mark.parametrize("line", ["", "   ", "abc, 123!", "\u3000。"])
def test_a_line_without_han_has_no_chinese_key(line):
    assert Chinese().key(line) is None


def test_chinese_parse_takes_names_and_single_characters():
    chinese = Chinese()
    for name in GROUPS:
        assert chinese.parse(name) == name
    assert chinese.parse("光") == "江阳" and chinese.parse("熊") == "中东"


@pytest.mark.parametrize("junk", ["", "xyz", "光明", "a", "😀", "嗯"])  # 嗯 is Han but of no group
def test_chinese_parse_refuses_junk_clearly(junk):
    with pytest.raises(ValueError, match="rhyme group") as error:
        Chinese().parse(junk)
    assert repr(junk) in str(error.value) and "江阳" in str(error.value)


def test_chinese_endings_are_the_known_characters_of_the_group():
    known = set("光阳我歌家花abc ")
    assert sorted(Chinese().endings("江阳", known)) == ["光", "阳"]
    assert Chinese().endings("乜斜", known) == []


def test_english_key_is_the_rhyming_part_of_the_word():
    assert english_key("time") == english_key("rhyme") == english_key("climb") == "AY M"
    assert english_key("overtime") == english_key("time")  # stress marks aside (AY2 M, AY1 M)
    assert english_key("tame") != english_key("time")
    assert english_key("Time") == english_key("time")  # the CMU dictionary is lower case
    assert english_key("xqzvvk") is None


@pytest.mark.parametrize("line, word", [
    ("It's about time", "time"),
    ("It's about time!", "time"),
    ("you climb, I said...", "said"),  # the last word, whatever comes before
    ("I'd rather rhyme  .  ", "rhyme"),
    ("Tame", "tame"),
])
def test_english_key_of_a_line_is_its_last_word(line, word):
    assert English().key(line) == english_key(word) is not None


@pytest.mark.parametrize("line", ["", "  ...  ", "123 456!", "xqzvvk"])
def test_an_english_line_without_a_known_last_word_has_no_key(line):
    assert English().key(line) is None


def test_english_parse():
    assert English().parse("time") == English().parse("Climb") == "AY M"
    for junk in ["", "xqzvvk", "two words", "光", "time!"]:
        with pytest.raises(ValueError, match="English word") as error:
            English().parse(junk)
        assert repr(junk) in str(error.value)


@pytest.mark.parametrize("word", ["time", "love", "give", "day"])
def test_english_endings_are_words_of_the_key_made_of_known_characters(word):
    """pronouncing files a word under each of its pronunciations: give's would hold "live" (L AY1 V first),
    day's "a" (AH0 first)."""
    key = english_key(word)
    endings = English().endings(key, LETTERS)
    assert word in endings and len(endings) > 5
    assert all(set(w) <= LETTERS for w in endings)
    assert [w for w in endings if english_key(w) != key] == []


def test_english_endings_keep_to_the_known_characters():
    endings = English().endings(english_key("time"), set("mtie"))
    assert sorted(endings) == ["mime", "time"]


def words_of(trie, ids=()):
    if trie.terminal:
        yield ids
    for i, child in trie.children.items():
        yield from words_of(child, ids + (i,))


@pytest.mark.parametrize("word", ["time", "give", "day"])
def test_the_endings_decoding_offers_are_all_of_the_key(word):
    rhymes = Rhymes(Vocab(sorted(LETTERS | set(" \n.,"))))
    key = english_key(word)
    words = ["".join(rhymes.vocab.itos[i] for i in ids) for ids in words_of(rhymes.trie(key))]
    assert word in words and all(english_key(w) == key for w in words)


def test_scheme_for_a_vocabulary():
    assert isinstance(scheme_for(list("我爱你的歌，ab")), Chinese)
    assert isinstance(scheme_for(list("the time machine,.\n")), English)


def test_the_cmu_dictionary_loads_once_for_threads_that_ask_together(monkeypatch):
    """pronouncing fills its tables one after another: threads asking at once must not read one half made."""
    import threading

    import pronouncing
    from charrnn.rhyme import English
    for table in ("pronunciations", "lookup", "rhyme_lookup"):
        monkeypatch.setattr(pronouncing, table, None)
    found, failed = [], []

    def ask():
        try:
            found.append(English().endings(english_key("time"), set("abcdefghijklmnopqrstuvwxyz")))
        except Exception as e:  # noqa: BLE001 - what a thread raised is the failure
            failed.append(e)
    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failed and len(found) == 8 and all("rhyme" in words for words in found)
