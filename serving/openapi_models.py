"""Typed descriptions of the inference bodies, used to document the routes the front serves.

The front parses bodies itself (faster, and with errors that point at the cell); these models
exist so `/openapi.json` and `/docs` describe exactly what it accepts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Number = float
Row = list[Number]


class ErrorBody(BaseModel):
    error: str = Field(description="What was wrong, and where (row/column) for bad input.")
    code: str


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    data: list[Row] | Row | list[dict[str, Number]] | dict[str, Number] = Field(
        description="Rows of numbers, one row, or records keyed by feature name (any order)."
    )
    method: Literal["predict", "predict_proba"] = "predict"


class PredictionsResponse(BaseModel):
    predictions: list[Any] = Field(description="One label/value per row, or one list of probabilities per row.")
    classes: list[Any] | None = Field(default=None, description="Class of each probability column (predict_proba).")


class DataframeSplit(BaseModel):
    columns: list[str] | None = None
    data: list[Row]


class MlflowRequest(BaseModel):
    """Exactly one of the fields (MLflow scoring JSON, or the /score body)."""

    model_config = ConfigDict(extra="allow")
    dataframe_split: DataframeSplit | None = None
    dataframe_records: list[dict[str, Number]] | None = None
    instances: list[Row] | list[dict[str, Number]] | None = None
    inputs: list[Row] | dict[str, list[Number]] | None = None
    data: list[Row] | Row | None = None
    method: Literal["predict", "predict_proba"] | None = None


class InferTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class RequestedOutput(BaseModel):
    name: str


class InferRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InferTensor]
    outputs: list[RequestedOutput] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[InferTensor]
