"""Character vocabulary: deterministic ids, a learned <unk>, the model's own text normalisation."""
from collections import Counter

UNK = "<unk>"
NEWLINE_MODES = ("keep", "space")


def normalize(text: str, newlines: str = "keep") -> str:
    """Unify line endings; with newlines="space", fold lines into one (the classic tutorial's choice)."""
    if newlines not in NEWLINE_MODES:
        raise ValueError(f"newlines must be one of {NEWLINE_MODES}, got {newlines!r}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\n", " ") if newlines == "space" else text


class Vocab:
    """Id 0 is <unk>; the other ids follow the characters' code points, so the same text gives the same ids."""

    def __init__(self, chars: list[str], newlines: str = "keep"):
        normalize("", newlines)  # validates the mode
        if any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise ValueError("a vocabulary is a list of distinct single characters")
        self.chars = sorted(chars)
        self.newlines = newlines
        self.itos = [UNK, *self.chars]
        self.stoi = {c: i for i, c in enumerate(self.itos) if i}
        self.unk_id = 0

    @classmethod
    def build(cls, text: str, min_count: int = 2, newlines: str = "keep") -> "Vocab":
        """Characters seen fewer than min_count times stay out, so <unk> is trained on real text."""
        counts = Counter(normalize(text, newlines))
        return cls([c for c, n in counts.items() if n >= min_count], newlines)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, char: str) -> bool:
        return char in self.stoi

    def encode(self, text: str) -> list[int]:
        get = self.stoi.get
        return [get(c, 0) for c in normalize(text, self.newlines)]

    def decode(self, ids) -> str:
        return "".join(self.itos[i] if i else "\ufffd" for i in ids)

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of text that encode to <unk>, in order of appearance."""
        return list(dict.fromkeys(c for c in normalize(text, self.newlines) if c not in self.stoi))

    def to_dict(self) -> dict:
        return {"chars": self.chars, "newlines": self.newlines}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocab":
        return cls(list(data["chars"]), data.get("newlines", "keep"))

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.to_dict() == other.to_dict()
