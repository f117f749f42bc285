"""Request and response models of the token API; the OpenAPI document is built from them."""

from __future__ import annotations

from pydantic import BaseModel, Field, StrictStr, model_validator

from berater.http import Strict


class TokenRequest(Strict):
    """Either a WeChat OAuth `code`, or a `username` and `password`."""

    code: StrictStr | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="the one-time code WeChat put on the sign-in redirect",
    )
    username: StrictStr | None = Field(None, min_length=1, max_length=64)
    password: StrictStr | None = Field(None, min_length=1, max_length=128)

    @model_validator(mode="after")
    def one_way_in(self) -> TokenRequest:
        by_code = self.code is not None
        by_password = self.username is not None or self.password is not None
        if by_code == by_password:
            raise ValueError("send either code, or username and password")
        if by_password and (self.username is None or self.password is None):
            raise ValueError("send both username and password")
        return self


class TokenOut(BaseModel):
    token: str
    student: bool
    candidate: bool
    roles: list[str]
    expires_in: int


class IdentityOut(BaseModel):
    kind: str = Field(description="wechat, account or app")
    roles: list[str]
    student: bool
    candidate: bool
    stuid: str | None = None
    admission_id: str | None = None
    username: str | None = None
    expires_at: int | None = None
    signed_in_at: int | None = None
