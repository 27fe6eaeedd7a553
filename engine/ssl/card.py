"""The typed schema of a model card (``card.json``), checked whenever a model is loaded.

Only the parts the engine acts on are typed strictly: the features and their
normalisation statistics, the first bar never seen in pretraining, and the
encoder's kind and configuration. Descriptive sections (training curve,
library versions, the pretraining config) and keys added by newer versions
are kept as they are, so a newer card still loads.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

#: The files of a model folder: the encoder's weights and its card.
WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "card.json"
#: Bars per encoding block (``engine.ssl.infer``). Part of what a representation is:
#: change it and every bar's bits change.
BLOCK_BARS = 1024


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class CardData(_Section):
    """The candles a model was pretrained on; ``unseen_from_utc`` bounds its use."""

    unseen_from_utc: AwareDatetime = Field(
        description="The first bar time never seen in pretraining (ISO 8601, UTC)."
    )


class CardFeatures(_Section):
    """The features an encoder reads, in order, and how they are normalised."""

    names: list[str] = Field(min_length=1)
    extras: list[str] = Field(default_factory=list)
    normalisation: Literal["zscore", "none"]
    mean: list[float] | None = None
    std: list[float] | None = None

    @field_validator("names")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("feature names that are all different")
        return names

    @model_validator(mode="after")
    def _statistics_fit(self) -> CardFeatures:
        if self.normalisation != "zscore":
            return self
        for label, values in (("mean", self.mean), ("std", self.std)):
            if values is None:
                raise ValueError(f"no {label} list; expected one for zscore normalisation")
            if len(values) != len(self.names):
                raise ValueError(
                    f"{label} holds {len(values)} values; expected {len(self.names)}, "
                    "one per feature"
                )
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"{label} holds a NaN or infinite value; expected finite numbers")
        if not all(s > 0 for s in self.std):
            raise ValueError("std holds a value <= 0; expected positive numbers")
        return self


class CardEncoder(_Section):
    """The encoder architecture and the keyword arguments that rebuild it."""

    kind: str
    config: dict[str, Any]


class ModelCard(_Section):
    """A model card, as ``engine.ssl.pretrain`` writes it."""

    name: str
    kind: str
    data: CardData
    features: CardFeatures
    encoder: CardEncoder

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        if self.encoder.kind != self.kind:
            raise ValueError(
                f"encoder.kind is {self.encoder.kind!r} and kind {self.kind!r}; expected the same"
            )
        inputs = self.encoder.config.get("input_dims")
        if inputs != len(self.features.names):
            raise ValueError(
                f"encoder.config.input_dims is {inputs!r}; expected {len(self.features.names)}, "
                "the number of features.names"
            )
        return self

    @property
    def unseen_from(self) -> dt.datetime:
        """Return the first bar time never seen in pretraining, in UTC."""
        return self.data.unseen_from_utc.astimezone(dt.UTC)


_JSON_TYPES = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def parse_card(raw: Any) -> ModelCard:
    """Return the validated card of the parsed JSON ``raw``.

    Raises
    ------
    ValueError
        One line per problem: the key path, the value received and what was
        expected.
    """
    if not isinstance(raw, dict):
        held = _JSON_TYPES.get(type(raw), type(raw).__name__)
        raise ValueError(f"the card is a JSON {held}; expected an object")
    try:
        return ModelCard.model_validate(raw)
    except ValidationError as exc:
        problems = [_problem(error) for error in exc.errors()]
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise ValueError("; ".join(problems[:3]) + more) from None


def _problem(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "card"
    if error["type"] == "missing":
        return f"{key}: missing"
    expected = error["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
    if isinstance(error.get("input"), dict):
        return f"{key}: {expected}"
    value = repr(error.get("input"))
    value = value if len(value) <= 60 else value[:57] + "..."
    return f"{key}: got {value}; expected {expected}"
