"""Rhyme at the end of a line: the thirteen rhyme groups of Chinese song lyrics (十三辙) from the pinyin
finals that pypinyin gives, and for English the CMU dictionary's rhymes (pronouncing). And a line's length as a
melody counts it: its sung characters in Chinese (punctuation, spaces and symbols are not sung), its syllables in
English (the CMU dictionary's, or for a word it lacks, a count of its vowel groups).

A line's rhyme lives in its last *token*: a Chinese character, or an English word. What follows that
token on the line (spaces, punctuation) belongs to it, so decoding can swap the whole tail at once.
"""
import re
import string
import threading
import unicodedata
from collections import defaultdict
from functools import cached_property, lru_cache

import pronouncing
from pypinyin import Style, lazy_pinyin

from .errors import BadValue

# name -> (pinyin finals as pypinyin writes them with strict=True, a character of the group)
GROUPS = {
    "发花": (("a", "ia", "ua"), "花"),
    "梭波": (("o", "e", "uo"), "波"),
    "乜斜": (("ie", "ve"), "斜"),
    "一七": (("i", "v", "er"), "七"),
    "姑苏": (("u",), "苏"),
    "怀来": (("ai", "uai"), "来"),
    "灰堆": (("ei", "uei"), "堆"),
    "遥条": (("ao", "iao"), "条"),
    "油求": (("ou", "iou"), "求"),
    "言前": (("an", "ian", "uan", "van"), "前"),
    "人辰": (("en", "in", "uen", "vn"), "辰"),
    "江阳": (("ang", "iang", "uang"), "阳"),
    "中东": (("eng", "ing", "ong", "iong", "ueng"), "东"),
}
GROUP_OF_FINAL = {final: name for name, (finals, _) in GROUPS.items() for final in finals}
MAX_WORD = 16  # longest English rhyme word offered
WELL_RHYMED = "well rhymed"  # the key of English words that end a letter's first line: words with rhymes enough
RHYMES_ENOUGH = 30  # words of the CMU dictionary that rhyme with such a word


def is_han(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf"


@lru_cache(2**16)  # bounded: a request may bring any character
def chinese_group(char: str) -> str | None:
    """The rhyme group of a Chinese character (its most common reading), None for anything else."""
    if not is_han(char):
        return None
    return GROUP_OF_FINAL.get(lazy_pinyin(char, style=Style.FINALS, strict=True)[0])


def is_sung(char: str) -> bool:
    """A character a Chinese line's length counts: not punctuation, a space, a symbol or a control character."""
    return unicodedata.category(char)[0] not in "PZSC"


LETTERS = string.ascii_letters + "'"  # what English words are made of: the characters is_letter accepts


def is_letter(char: str) -> bool:
    return char.isascii() and (char.isalpha() or char == "'")


def words_of(text: str) -> list[str]:
    return "".join(c if is_letter(c) else " " for c in text).split()


CMU_LOADING = threading.Lock()


def load_cmu() -> None:
    """The CMU dictionary, loaded once. pronouncing sets its tables one after another: a second thread asking while a
    first loaded them found the first one set and read the others as None (and words_by_key kept that None)."""
    with CMU_LOADING:
        pronouncing.init_cmu()


@lru_cache(2**14)  # bounded: a model writing English makes up words without end
def english_key(word: str) -> str | None:
    """The rhyming part of a word's first CMU pronunciation, its stress marks aside ('time' -> 'AY M'; 'states' and
    'estimates' rhyme), None if it has none."""
    load_cmu()
    phones = pronouncing.phones_for_word(word.lower().strip("'"))
    return unstressed(pronouncing.rhyming_part(phones[0])) if phones else None


def unstressed(phones: str) -> str:
    return re.sub(r"\d", "", phones)


@lru_cache(2**14)  # bounded, as english_key
def syllables(word: str) -> int | None:
    """A word's syllables by its first CMU pronunciation, None if the dictionary lacks it."""
    load_cmu()
    phones = pronouncing.phones_for_word(word.lower().strip("'"))
    return pronouncing.syllable_count(phones[0]) if phones else None


def estimated_syllables(word: str) -> int:
    """A word the CMU dictionary lacks, counted by its groups of vowels (a final silent e not one): at least 1."""
    groups = re.findall(r"[aeiouy]+", word.lower())
    silent = len(groups) > 1 and word.lower().endswith("e") and not word.lower().endswith(("le", "ee"))
    return max(1, len(groups) - silent)


def first_pronunciations() -> list[tuple[str, str]]:
    """(word, its first CMU pronunciation) for the words decoding may end a line on: letters only, short enough."""
    load_cmu()
    first = {}
    for word, phones in pronouncing.pronunciations:
        if word not in first and len(word) <= MAX_WORD and all(map(is_letter, word)):
            first[word] = phones
    return list(first.items())


def words_by(measure) -> dict:
    """The words decoding may end a line on, grouped by measure(their first pronunciation)."""
    found = defaultdict(list)
    for word, phones in first_pronunciations():
        found[measure(phones)].append(word)
    return found


class Chinese:
    """Rhyme keys are the group names; a token is one Han character; a line's length is its sung characters."""
    language = "zh"

    def units(self, line: str) -> tuple[int, str]:
        """(the line's length so far, the word still open: none, every sung character counts at once)."""
        return sum(map(is_sung, line)), ""

    def word_units(self, word: str) -> int:
        return sum(map(is_sung, word))

    def starts_token(self, previous: str, char: str) -> bool:
        return is_han(char)

    def key(self, line: str) -> str | None:
        """The rhyme of a line: the group of its last Han character."""
        return next((chinese_group(c) for c in reversed(line) if is_han(c)), None)

    def parse(self, rhyme: str, option: str = "rhyme") -> str:
        if rhyme in GROUPS:
            return rhyme
        if len(rhyme) == 1 and chinese_group(rhyme):
            return chinese_group(rhyme)
        raise BadValue(option, rhyme, f"'auto', a rhyme group ({', '.join(GROUPS)}) or a Chinese character of one")

    def endings(self, key: str | None, known, units: int | None = None) -> list[str]:
        """The tokens that end a line in this rhyme (key None: any sung character), among the characters known."""
        if units not in (None, 1):
            return []
        return [c for c in known if (chinese_group(c) == key if key else is_sung(c))]


class English:
    """Rhyme keys are CMU rhyming parts; a token is a word of ASCII letters (and apostrophes); a line's length is
    its syllables."""
    language = "en"

    def units(self, line: str) -> tuple[int, str]:
        """(the syllables of the line's finished words, the word it ends in that may go on: '' after a non-letter)."""
        words = words_of(line)
        open_word = words.pop() if words and is_letter(line[-1]) else ""
        return sum(map(self.word_units, words)), open_word

    def word_units(self, word: str) -> int:
        return sum(estimated_syllables(w) if syllables(w) is None else syllables(w) for w in words_of(word))

    def starts_token(self, previous: str, char: str) -> bool:
        return is_letter(char) and not is_letter(previous)

    def key(self, line: str) -> str | None:
        words = words_of(line)
        return english_key(words[-1]) if words else None

    def well_rhymed(self, line: str) -> bool:
        """Whether a line ends in a word the dictionary has rhymes enough for (a scheme letter's first line)."""
        key = self.key(line)
        return key is not None and len(self.words_by_key.get(key, ())) >= RHYMES_ENOUGH

    def parse(self, rhyme: str, option: str = "rhyme") -> str:
        key = english_key(rhyme) if rhyme and all(is_letter(c) for c in rhyme) else None
        if key is None:
            raise BadValue(option, rhyme, "'auto' or an English word in the CMU dictionary")
        return key

    @cached_property
    def words_by_key(self) -> dict[str, list[str]]:
        """Words by the rhyming part of their first pronunciation, stress marks aside."""
        return words_by(lambda phones: unstressed(pronouncing.rhyming_part(phones)))

    @cached_property
    def words_by_syllables(self) -> dict[int, list[str]]:
        return words_by(pronouncing.syllable_count)

    def endings(self, key: str | None, known, units: int | None = None) -> list[str]:
        """Words of this rhyme by their first pronunciation (the one `key` reads), made of the characters known;
        with units, of that many syllables (key None: any rhyme)."""
        if key in (None, WELL_RHYMED):
            words = (self.words_by_syllables.get(units, ()) if units is not None
                     else (w for w, _ in first_pronunciations()))
            return [w for w in words if all(c in known for c in w) and (key is None or self.well_rhymed(w))]
        return [w for w in self.words_by_key.get(key, ()) if all(c in known for c in w)
                and (units is None or syllables(w) == units)]


def language_of(chars) -> str:
    """zh for characters mostly Han, else en."""
    han = sum(map(is_han, chars))
    latin = sum(c.isascii() and c.isalpha() for c in chars)
    return "zh" if han > latin else "en"


def scheme_for(chars) -> Chinese | English:
    """The rhymes of a vocabulary's language: Chinese or English."""
    return Chinese() if language_of(chars) == "zh" else English()
