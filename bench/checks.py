"""What a co-written lyric must be, checked from pypinyin and pronouncing directly rather than by the decoder's own
bookkeeping: the benchmark (bench/cowrite.py) and the tests (tests/test_song.py) share these.

A Chinese line's length is its sung characters (not punctuation, spaces, symbols or control characters); an English
line's, its syllables by the CMU dictionary's first pronunciation, a word it lacks by its vowel groups (the rule the
docs state, charrnn.rhyme.estimated_syllables). A line's rhyme: the 十三辙 group of its last Han character's pinyin
final, else its last word's CMU rhyming part, stress marks aside."""
import re
import unicodedata

import pronouncing
from pypinyin import Style, lazy_pinyin

from charrnn.rhyme import GROUPS, estimated_syllables

FINALS = {final: name for name, (finals, _) in GROUPS.items() for final in finals}


def sung(line: str) -> int:
    return sum(unicodedata.category(c)[0] not in "PZSC" for c in line)


def words(line: str) -> list[str]:
    return re.findall(r"[A-Za-z']+", line)


def syllables(line: str) -> int:
    total = 0
    for word in words(line):
        phones = pronouncing.phones_for_word(word.lower().strip("'"))
        total += pronouncing.syllable_count(phones[0]) if phones else estimated_syllables(word)
    return total


def length(line: str, english: bool) -> int:
    return syllables(line) if english else sung(line)


def rhyme_of(line: str) -> str | None:
    han = [c for c in line if "\u4e00" <= c <= "\u9fff"]
    if han:
        return FINALS.get(lazy_pinyin(han[-1], style=Style.FINALS, strict=True)[0])
    found = words(line)
    phones = pronouncing.phones_for_word(found[-1].lower().strip("'")) if found else []
    return re.sub(r"\d", "", pronouncing.rhyming_part(phones[0])) if phones else None


def lines_of(text: str) -> list[str]:
    return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")


def broken_rhymes(text: str, letters: str, given: dict | None = None) -> list[str]:
    """Lines whose rhyme is not their letter's (a letter's rhyme: given, else its first line's)."""
    keys, broken = dict(given or {}), []
    for k, line in enumerate(lines_of(text)):
        letter = letters[k % len(letters)]
        if letter == "X":
            continue
        keys.setdefault(letter, rhyme_of(line))
        if rhyme_of(line) != keys[letter]:
            broken.append(f"line {k + 1} {line!r}: {rhyme_of(line)}, not {keys[letter]}")
    return broken


def times_held(text: str, keyword: str, english: bool = False) -> int:
    if english:
        return len(re.findall(rf"(?<![A-Za-z']){re.escape(keyword)}(?![A-Za-z'])", text, re.IGNORECASE))
    return text.count(keyword)
