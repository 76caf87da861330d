"""The API's request and answer models: one pydantic model per form and answer, used both to validate and to
write the OpenAPI document (:mod:`.openapi`), so the schema cannot drift from what the views accept."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: a preset name (lowercase, digits, underscores)
PRESET_NAME = r"^[a-z0-9_]{1,64}$"


class Quality(StrEnum):
    quick = "quick"
    high = "high"


class Brush(StrEnum):
    small = "small"
    medium = "medium"
    large = "large"


class StylizationForm(BaseModel):
    """``POST /v1/stylizations`` (multipart/form-data). ``content`` is a picture or a clip; the style is
    ``preset`` (``name``, or ``name:weight,name:weight`` to mix) or one or two ``style`` files with
    ``style_weights``."""

    model_config = ConfigDict(extra="forbid")

    preset: str | None = Field(None, max_length=200, examples=["starry_night", "candy:0.7,mosaic:0.3"],
                               description="a preset, or presets with weights to mix (at most two)")
    style_weights: str | None = Field(None, max_length=100, examples=["0.7,0.3"],
                                      description="weights of the style files, comma separated")
    strength: float = Field(1.0, ge=0.0, le=1.0, description="how much style: 0 keeps the photo, 1 is full")
    preserve_color: bool = Field(False, description="keep the photo's colours")
    size: int | None = Field(None, ge=16, le=4096, description="long side of the result in px (default 512)")
    quality: Quality = Field(Quality.quick, description="quick (seconds) or high (an optimisation, minutes)")
    brush: Brush = Field(Brush.medium, description="stroke size when the style is a picture")

    @field_validator("preserve_color", mode="before")
    @classmethod
    def _flag(cls, value: object) -> object:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off", ""):
                return False
        return value


class PredictQuery(BaseModel):
    """``POST /model/predict`` query: the MAX contract's ``model`` is one of our presets."""

    model: str = Field(..., pattern=PRESET_NAME, examples=["mosaic"])


class Links(BaseModel):
    self: str
    result: str
    events: str
    cancel: str


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Stylization(BaseModel):
    """A stylization job as the API shows it."""

    id: str = Field(..., description="unguessable (128 random bits)")
    status: JobStatus
    position: int | None = Field(None, description="place in the queue while queued (1 is next)")
    progress: float | None = Field(None, ge=0, le=1)
    eta_s: float | None = Field(None, description="seconds until done, roughly")
    created_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    kind: Literal["picture", "clip"]
    result_type: str | None = Field(None, description="the result's media type once it succeeded")
    links: Links


class StylizationList(BaseModel):
    items: list[Stylization]


class PresetInfo(BaseModel):
    name: str
    title: str
    kind: str = Field(..., description="what kind of style: painting, drawing, pattern, photo ...")
    source: str | None = Field(None, description="the picture it was trained on")
    thumbnail_url: str | None = None


class PresetList(BaseModel):
    items: list[PresetInfo]


class MethodInfoOut(BaseModel):
    name: str
    description: str
    takes_pictures: bool = Field(..., description="takes any picture as the style")
    presets: bool = Field(..., description="has presets")
    mixes_presets: bool
    slow: bool = Field(..., description="an optimisation (high quality), minutes on a CPU")
    quality: Quality


class MethodList(BaseModel):
    items: list[MethodInfoOut]


class ModelMetadata(BaseModel):
    """``GET /model/metadata`` (the MAX contract)."""

    id: str
    name: str
    description: str
    type: str
    license: str
    source: str


class Health(BaseModel):
    status: Literal["ok"]


class ProblemDoc(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
