"""What the library refuses, typed. A model that cannot be loaded is a ModelFileError. An option that cannot be
honoured is an OptionError, which names the option it is about (the argument's keyword, as `option`) and carries the
facts, so that a page, a CLI or an API words it in its own terms; str() is the library's own sentence. All are
ValueErrors, and their arguments are their facts (`args`), so they pickle as they are."""


class ModelFileError(ValueError):
    """A model folder or Hub repo that cannot be loaded: the message says what is wrong."""


class OptionError(ValueError):
    """An option no model, or not this model, can honour; raised before anything is decoded or scored."""

    def __init__(self, option: str, value=None, *facts):
        super().__init__(option, value, *facts)
        self.option, self.value = option, value

    def __str__(self) -> str:
        return f"{self.option} cannot be {self.value!r}"


class BadValue(OptionError):
    """A value of the wrong type or outside what is allowed: `allowed` says what is (a limits.Range, or words)."""

    def __init__(self, option: str, value, allowed, note: str = ""):
        super().__init__(option, value, allowed, note)
        self.allowed, self.note = allowed, note

    def __str__(self) -> str:
        return f"{self.option} must be {self.allowed}{f' ({self.note})' if self.note else ''}, got {self.value!r}"


class EmptyText(OptionError):
    """A text that must not be empty is."""

    def __str__(self) -> str:
        return f"{self.option} is empty: there is nothing to {'score' if self.option == 'text' else 'read'}"


class UnknownCharacters(OptionError):
    """Characters the model does not know where it must write them (an acrostic's heads)."""

    def __init__(self, option: str, value, characters: str):
        super().__init__(option, value, characters)
        self.characters = characters

    def __str__(self) -> str:
        return f"{self.option} has characters this model does not know: {' '.join(map(repr, self.characters))}"


class NoRhyme(OptionError):
    """A rhyme the model's vocabulary has no line ending for."""

    def __str__(self) -> str:
        return f"this model knows no word or character that rhymes with {self.value!r}"


class NoLineBreak(OptionError):
    """A form made of lines, asked of a model whose vocabulary has no line break."""

    def __str__(self) -> str:
        return f"this model's vocabulary has no line break: {self.option} needs one"


class TooShort(OptionError):
    """A length (of text, or of lines) too short for the rest of the form: `needed` is the least that fits."""

    def __init__(self, option: str, value: int, needed: int, because: str):
        super().__init__(option, value, needed, because)
        self.needed, self.because = needed, because

    def __str__(self) -> str:
        return f"{self.option} {self.value} is too short for {self.because}: it needs at least {self.needed}"
