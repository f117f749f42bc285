"""Request and response models of the JS-SDK signature."""

from __future__ import annotations

from pydantic import BaseModel, Field

from berater.http import Strict
from berater.urls import MAX_PAGE_URL


class JssdkQuery(Strict):
    url: str = Field(
        ...,
        min_length=1,
        max_length=MAX_PAGE_URL,
        description="the page's URL as the browser has it (`location.href`), on a partner "
        "host (SIGNIN_REDIRECT_HOSTS) or this service's; its `#fragment` is not signed",
    )


class JssdkOut(BaseModel):
    """What `wx.config` takes besides `jsApiList`, under WeChat's own names."""

    appId: str = Field(description="the service account's appid")
    timestamp: int = Field(description="seconds since the epoch, as signed")
    nonceStr: str = Field(description="a fresh random string, as signed")
    signature: str = Field(
        description="sha1 of `jsapi_ticket=..&noncestr=..&timestamp=..&url=..`, lowercase hex"
    )
