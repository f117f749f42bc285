"""Tests for the Aliyun SMS stand-in, over real HTTP on loopback, with the real SDK as client."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import pytest
import requests
from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.http import protocol_type
from aliyunsdkcore.request import CommonRequest

from standins.aliyun import FakeAliyunSms, RunningAliyunSms, running, sign, string_to_sign

KEY = "LTAItestkey0001"
SECRET = "test-access-secret"
PHONE = "13800138000"


@pytest.fixture
def fake() -> FakeAliyunSms:
    return FakeAliyunSms(KEY, SECRET, sign_name="Berater", template_code="SMS_1", timeout_sleep=1.0)


@pytest.fixture
def server(fake: FakeAliyunSms) -> Iterator[RunningAliyunSms]:
    with running(fake) as srv:
        yield srv


def sdk_client(secret: str = SECRET, key: str = KEY, read_timeout: float = 3.0) -> AcsClient:
    return AcsClient(key, secret, auto_retry=False, connect_timeout=1, timeout=read_timeout)


def sdk_request(phone: str = PHONE, method: str = "POST", **params: str) -> CommonRequest:
    """SendSms for the SDK: business parameters in the body (POST) or the query (GET)."""
    request = CommonRequest(version="2017-05-25", action_name="SendSms")
    request.set_method(method)
    request.set_protocol_type(protocol_type.HTTP)
    values = {
        "PhoneNumbers": phone,
        "SignName": "Berater",
        "TemplateCode": "SMS_1",
        "TemplateParam": json.dumps({"code": "123456"}),
        **params,
    }
    for name, value in values.items():
        if method == "POST":
            request.add_body_params(name, value)
        else:
            request.add_query_param(name, value)
    return request


def sdk_send(
    server: RunningAliyunSms,
    phone: str = PHONE,
    method: str = "POST",
    client: AcsClient | None = None,
    **params: str,
) -> dict:
    request = sdk_request(phone, method, **params)
    request.set_domain(urlsplit(server.url).netloc)
    return json.loads((client or sdk_client()).do_action_with_exception(request))


# An independent signer, written from Aliyun's documentation, for hand-made requests.
def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def hand_signed(method: str = "GET", secret: str = SECRET, **overrides: str) -> dict[str, str]:
    params = {
        "AccessKeyId": KEY,
        "Action": "SendSms",
        "Format": "JSON",
        "PhoneNumbers": PHONE,
        "RegionId": "cn-hangzhou",
        "SignName": "Berater",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": str(uuid.uuid4()),
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_1",
        "TemplateParam": '{"code":"654321"}',
        "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Version": "2017-05-25",
        **overrides,
    }
    query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(params.items()))
    to_sign = f"{method}&%2F&{_encode(query)}"
    mac = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    params["Signature"] = base64.b64encode(mac).decode()
    return params


def send_raw(server: RunningAliyunSms, params: dict[str, str], method: str = "GET"):
    if method == "POST":
        return requests.post(server.url + "/", data=params, timeout=5)
    return requests.get(server.url + "/", params=params, timeout=5)


# --- the signature ----------------------------------------------------------------------------


def test_the_documented_example_signature_is_reproduced() -> None:
    # The SendSms example of Aliyun's signature documentation (testId / testSecret).
    params = {
        "AccessKeyId": "testId",
        "Action": "SendSms",
        "Format": "XML",
        "OutId": "123",
        "PhoneNumbers": "15300000001",
        "RegionId": "cn-hangzhou",
        "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z",
        "Version": "2017-05-25",
    }
    assert string_to_sign("GET", params).startswith(
        "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123"
    )
    assert "Timestamp%3D2017-07-12T02%253A42%253A19Z" in string_to_sign("GET", params)
    assert sign("GET", params, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_request_signed_by_the_sdk_is_accepted_and_recorded(server, fake, method) -> None:
    answer = sdk_send(server, method=method)
    assert answer["Code"] == "OK"
    assert answer["Message"] == "OK"
    assert answer["BizId"] and answer["RequestId"]
    [message] = fake.sent
    assert message.phone == PHONE
    assert message.template_param == {"code": "123456"}
    assert (message.sign_name, message.template_code, message.method) == (
        "Berater",
        "SMS_1",
        method,
    )


def test_last_to_finds_the_newest_message_to_a_phone(server, fake) -> None:
    assert fake.last_to(PHONE) is None
    for phone, code in ((PHONE, "111111"), ("13900139000", "222222"), (PHONE, "333333")):
        sdk_send(server, phone, TemplateParam=json.dumps({"code": code}))
    newest = fake.last_to(PHONE)
    assert newest is not None and newest.template_param == {"code": "333333"}
    other = fake.last_to("13900139000")
    assert other is not None and other.template_param == {"code": "222222"}
    assert fake.last_to("13700137000") is None


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_hand_signed_request_is_accepted(server, fake, method) -> None:
    response = send_raw(server, hand_signed(method), method)
    assert response.status_code == 200
    assert response.json()["Code"] == "OK"
    assert fake.sent[0].template_param == {"code": "654321"}


def test_a_parameter_changed_after_signing_is_rejected(server, fake) -> None:
    params = hand_signed()
    params["PhoneNumbers"] = "13900139000"
    response = send_raw(server, params)
    assert response.status_code == 400
    body = response.json()
    assert body["Code"] == "SignatureDoesNotMatch"
    assert "server string to sign is:GET&%2F&" in body["Message"]
    assert fake.sent == []


def test_a_signature_made_for_another_method_is_rejected(server, fake) -> None:
    response = send_raw(server, hand_signed("GET"), "POST")
    assert response.json()["Code"] == "SignatureDoesNotMatch"
    assert fake.sent == []


def test_a_wrong_secret_fails_on_the_same_string_to_sign_as_the_sdks(server, fake) -> None:
    request = sdk_request()
    request.set_domain(urlsplit(server.url).netloc)
    with pytest.raises(ServerException) as caught:
        sdk_client(secret="not-the-secret").do_action_with_exception(request)
    assert caught.value.get_http_status() == 400
    assert caught.value.get_error_code() == "SignatureDoesNotMatch"
    # Equal strings to sign: the canonicalisation matches the SDK's, only the secret differs.
    server_side = caught.value.get_error_msg().split("server string to sign is:", 1)[1]
    assert server_side == request.request.string_to_sign
    assert fake.sent == []


def test_a_reused_nonce_is_rejected(server, fake) -> None:
    params = hand_signed()
    assert send_raw(server, params).json()["Code"] == "OK"
    again = send_raw(server, params)
    assert again.status_code == 400
    assert again.json()["Code"] == "SignatureNonceUsed"
    assert len(fake.sent) == 1


def test_an_unknown_access_key_is_rejected(server, fake) -> None:
    with pytest.raises(ServerException) as caught:
        sdk_send(server, client=sdk_client(key="LTAIsomeoneelse"))
    assert caught.value.get_http_status() == 404
    assert caught.value.get_error_code() == "InvalidAccessKeyId.NotFound"


def _minutes_from_now(minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("timestamp", "code"),
    [(-20, "Expired"), (20, "Expired"), ("2024-01-01 00:00:00", "Format")],
)
def test_a_stale_or_malformed_timestamp_is_rejected(server, fake, timestamp, code) -> None:
    # Offsets become timestamps when the test runs, not when the suite is collected.
    if isinstance(timestamp, int):
        timestamp = _minutes_from_now(timestamp)
    response = send_raw(server, hand_signed(Timestamp=timestamp))
    assert response.status_code == 400
    assert response.json()["Code"] == f"InvalidTimeStamp.{code}"
    assert fake.sent == []


@pytest.mark.parametrize("name", ["Signature", "SignatureNonce", "AccessKeyId", "Timestamp"])
def test_a_missing_common_parameter_is_rejected(server, name) -> None:
    params = hand_signed()
    del params[name]
    response = send_raw(server, params)
    assert response.status_code == 400
    assert response.json()["Code"] == f"Missing{name}"


def test_a_repeated_parameter_is_rejected(server, fake) -> None:
    params = hand_signed()
    url = server.url + "/?PhoneNumbers=13900139000"
    response = requests.get(url, params=params, timeout=5)
    assert response.status_code == 400
    assert fake.sent == []


@pytest.mark.parametrize(
    ("override", "status", "code"),
    [
        ({"Action": "SendBatchSms"}, 404, "InvalidAction.NotFound"),
        ({"Version": "2016-09-27"}, 400, "InvalidVersion"),
        ({"SignatureMethod": "HMAC-SHA256"}, 400, "InvalidSignatureMethod"),
    ],
)
def test_only_sendsms_of_2017_05_25_with_hmac_sha1_is_served(server, override, status, code):
    response = send_raw(server, hand_signed(**override))
    assert response.status_code == status
    assert response.json()["Code"] == code


# --- business answers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phones",
    ["1380013800", "23800138000", "+8613800138000", "１３８００１３８０００", "138001380001"],
)
def test_an_illegal_phone_number_is_refused(server, fake, phones) -> None:
    assert sdk_send(server, phone=phones)["Code"] == "isv.MOBILE_NUMBER_ILLEGAL"
    assert fake.sent == []


def test_a_list_of_phones_texts_each_of_them(server, fake) -> None:
    assert sdk_send(server, phone="13800138000,13900139000")["Code"] == "OK"
    assert [message.phone for message in fake.sent] == ["13800138000", "13900139000"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"SignName": "Other"}, "isv.SMS_SIGNATURE_ILLEGAL"),
        ({"TemplateCode": "SMS_2"}, "isv.SMS_TEMPLATE_ILLEGAL"),
        ({"TemplateParam": "not json"}, "isv.INVALID_JSON_PARAM"),
        ({"TemplateParam": '{"code": 123456}'}, "isv.INVALID_JSON_PARAM"),
    ],
)
def test_sign_name_template_and_parameters_are_checked(server, fake, params, code) -> None:
    assert sdk_send(server, **params)["Code"] == code
    assert fake.sent == []


@pytest.mark.parametrize(
    "code",
    [
        "isv.BUSINESS_LIMIT_CONTROL",
        "isv.MOBILE_NUMBER_ILLEGAL",
        "isv.DAY_LIMIT_CONTROL",
        "isv.OUT_OF_SERVICE",
        "isp.SYSTEM_ERROR",
    ],
)
def test_any_error_code_can_be_queued_once(server, fake, code) -> None:
    fake.fail(code)
    answer = sdk_send(server)
    assert answer["Code"] == code
    assert answer["Message"] and answer["RequestId"]
    assert fake.sent == []
    assert sdk_send(server)["Code"] == "OK"  # consumed
    assert len(fake.sent) == 1


def test_a_fault_waits_for_a_correctly_signed_request(server, fake) -> None:
    fake.fail("isv.OUT_OF_SERVICE")
    bad = hand_signed()
    bad["Signature"] = "AAAA" + bad["Signature"][4:]
    assert send_raw(server, bad).json()["Code"] == "SignatureDoesNotMatch"
    assert sdk_send(server)["Code"] == "isv.OUT_OF_SERVICE"


def test_a_timeout_sends_the_message_but_answers_too_late(server, fake) -> None:
    fake.fail("timeout")
    started = time.monotonic()
    with pytest.raises(ClientException) as caught:
        sdk_send(server, client=sdk_client(read_timeout=0.4))
    assert caught.value.get_error_code() == "SDK.HttpError"
    assert time.monotonic() - started < 0.9
    assert len(fake.sent) == 1  # delivered, though the client never heard so
    assert fake.calls == 1  # and the SDK did not retry


def test_http500_and_html_faults(server, fake) -> None:
    fake.fail("http500")
    fake.fail("html")
    with pytest.raises(ServerException) as caught:
        sdk_send(server)
    assert caught.value.get_http_status() == 500
    response = send_raw(server, hand_signed())
    assert response.headers["Content-Type"].startswith("text/html")
    assert fake.sent == []


def test_a_fault_can_last_until_cleared(server, fake) -> None:
    fake.fail("isp.SYSTEM_ERROR", times=None)
    assert [sdk_send(server)["Code"] for _ in range(3)] == ["isp.SYSTEM_ERROR"] * 3
    fake.clear_faults()
    assert sdk_send(server)["Code"] == "OK"


def test_fail_refuses_bad_arguments(fake) -> None:
    with pytest.raises(ValueError):
        fake.fail("OK")
    with pytest.raises(ValueError):
        fake.fail("isp.SYSTEM_ERROR", times=-1)


def test_reset_forgets_messages_calls_and_faults(server, fake) -> None:
    sdk_send(server)
    fake.fail("isp.SYSTEM_ERROR")
    fake.reset()
    assert (fake.sent, fake.calls) == ([], 0)
    assert sdk_send(server)["Code"] == "OK"


def test_control_endpoints(server, fake) -> None:
    assert (
        requests.post(server.url + "/_standin/fail", json={"code": ""}, timeout=5).status_code
        == 400
    )
    response = requests.post(
        server.url + "/_standin/fail", json={"code": "isv.DAY_LIMIT_CONTROL"}, timeout=5
    )
    assert response.json() == {"ok": True}
    assert sdk_send(server)["Code"] == "isv.DAY_LIMIT_CONTROL"
    sdk_send(server)
    listing = requests.get(server.url + "/_standin/sent", timeout=5).json()
    assert listing["calls"] == 2
    assert [m["phone"] for m in listing["sent"]] == [PHONE]
    requests.post(server.url + "/_standin/reset", timeout=5)
    assert fake.sent == []


def test_the_secret_is_not_in_its_repr(fake) -> None:
    assert SECRET not in repr(fake)


def test_module_main_serves_and_logs_no_query() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "standins.aliyun", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        client = AcsClient(
            "dev-sms-access-key", "dev-sms-access-secret", auto_retry=False, timeout=3
        )
        request = CommonRequest(
            domain=urlsplit(url).netloc, version="2017-05-25", action_name="SendSms"
        )
        request.set_method("GET")
        for name, value in {
            "PhoneNumbers": PHONE,
            "SignName": "Berater",
            "TemplateCode": "SMS_1",
            "TemplateParam": '{"code":"246810"}',
        }.items():
            request.add_query_param(name, value)
        assert json.loads(client.do_action_with_exception(request))["Code"] == "OK"
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=5)
    assert "GET / -> 200" in stderr
    assert PHONE not in stderr
    assert "246810" not in stderr
