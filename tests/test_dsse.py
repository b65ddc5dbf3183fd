import pytest

from protos import dsse, keys, wire
from protos.errors import SignatureError
from protos.rarenet.v1.summary_pb2 import SiteSummary


def test_pae_matches_the_dsse_specification_example() -> None:
    # From the DSSE protocol document.
    assert (
        dsse.pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_sign_and_verify_round_trip() -> None:
    key = keys.generate()
    envelope = dsse.sign(wire.SITE_SUMMARY, b'{"a": 1}', key)
    trusted = {dsse.keyid(key.public_key()): keys.public_raw(key)}
    assert dsse.verify(envelope, trusted, expected_type=wire.SITE_SUMMARY) == set(trusted)


@pytest.mark.parametrize("position", [0, 5, -1])
def test_one_changed_payload_byte_fails(position: int) -> None:
    key = keys.generate()
    envelope = dsse.sign(wire.SITE_SUMMARY, b'{"site_id": "lab-a", "tests": 12}', key)
    payload = bytearray(envelope.payload)
    payload[position] ^= 0x01
    envelope.payload = bytes(payload)
    with pytest.raises(SignatureError, match="does not verify"):
        dsse.verify(envelope, {dsse.keyid(key.public_key()): keys.public_raw(key)})


def test_changed_payload_type_fails() -> None:
    key = keys.generate()
    envelope = dsse.sign(wire.SITE_SUMMARY, b"{}", key)
    envelope.payload_type = wire.RECEIPT
    with pytest.raises(SignatureError):
        dsse.verify(envelope, {dsse.keyid(key.public_key()): keys.public_raw(key)})


def test_untrusted_key_fails() -> None:
    envelope = dsse.sign(wire.SITE_SUMMARY, b"{}", keys.generate())
    other = keys.generate()
    with pytest.raises(SignatureError, match="no signature is by a trusted key"):
        dsse.verify(envelope, {dsse.keyid(other.public_key()): keys.public_raw(other)})


def test_payload_decoding_is_strict() -> None:
    with pytest.raises(Exception, match="not a valid SiteSummary"):
        wire.decode(b'{"site_id": "a", "patient_id": "P1"}', SiteSummary)
    with pytest.raises(Exception, match="not a valid SiteSummary"):
        wire.decode(b"\xff\xfe garbage", SiteSummary)


def test_private_key_file_is_0600_and_refuses_wider_modes(tmp_path) -> None:
    path = tmp_path / "k" / "site.key"
    keys.save_private(keys.generate(), path)
    assert path.stat().st_mode & 0o777 == 0o600
    keys.load_private(path)
    path.chmod(0o644)
    with pytest.raises(Exception, match="chmod 600"):
        keys.load_private(path)
    with pytest.raises(Exception, match="already exists"):
        keys.save_private(keys.generate(), path)
