"""Request and response models of the SMS code API."""

from __future__ import annotations

from pydantic import BaseModel, Field, StrictStr, field_validator

from berater.http import ErrorOut, Strict
from berater.identifiers import InvalidPhone, normalise_phone


class CodeRequest(Strict):
    """The phone to text a code to."""

    phone: StrictStr = Field(
        min_length=1,
        max_length=32,
        description="one mainland mobile number; `+86`, spaces and dashes are allowed",
        examples=["138 0013 8000"],
    )

    @field_validator("phone")
    @classmethod
    def one_mainland_mobile(cls, value: str) -> str:
        try:
            return normalise_phone(value)
        except InvalidPhone as exc:
            raise ValueError(str(exc)) from None


class VerifyRequest(Strict):
    """The code the user received."""

    code: StrictStr = Field(pattern=r"^[0-9]{6}$", description="6 digits", examples=["042917"])


class CodeSentOut(BaseModel):
    phone: str = Field(description="the normalised phone, masked: 138****8000")
    expires_in: int = Field(description="seconds the code stays valid")
    resend_after: int = Field(description="seconds before another code may be asked for")


class PhoneVerifiedOut(BaseModel):
    phone: str = Field(description="the verified phone, masked")
    verified: bool
    expires_in: int = Field(description="seconds the verification stays valid for binding")


class CodeErrorOut(ErrorOut):
    tries_left: int | None = Field(None, description="wrong tries left before the code is void")
