#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into fuzz/corpus/<target>/ (generated, not committed).

Seeds come from the repository: request vectors (tests/data/inbound-vectors.json), golden
bodies (tests/golden/), the shipped configs (config/*.toml), and spool frames built here the
way src/spool/frame.rs writes them. Run from anywhere: python3 fuzz/seed.py
"""
import glob
import hashlib
import json
import os
import re
import struct
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")


def vendor_order():
    """The vendors in VendorKind::ALL order: profile i of the targets is vendor i."""
    text = open(os.path.join(ROOT, "src", "vendors", "mod.rs")).read()
    block = text[text.index("vendors! {"):]
    block = block[: block.index("}")]
    return re.findall(r'=>\s*"([a-z_]+)"', block)


VENDORS = vendor_order()
# vector scheme names that are a vendor under another name
ALIASES = {"svix": "standard_webhooks", "gitlab_token": "gitlab", "gitlab_signing_token": "gitlab",
           "okta_event_hook": "okta", "pagerduty_v3": "pagerduty", "zoom_url_validation": "zoom",
           "standard_webhooks_v1a": "standard_webhooks"}


def put(target, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def verify_seed(profile, flags, headers, body, skew=0):
    head = b"".join(k.encode() + b": " + v.encode() + b"\n" for k, v in headers.items())
    return bytes([profile % 256, flags]) + struct.pack("<Hi", 7, skew) + head + b"\n\n" + body


def bodies():
    """(vendor, body bytes) from the golden cases and the vectors."""
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "golden", "*", "*.json"))):
        case = json.load(open(path))
        if case.get("body") is not None:
            body = json.dumps(case["body"], separators=(",", ":")).encode()
        else:
            body = (case.get("body_text") or "").encode()
        out.append((case["vendor"], body, case.get("headers") or {}))
    for v in json.load(open(os.path.join(ROOT, "tests", "data", "inbound-vectors.json"))):
        name = ALIASES.get(v["scheme"], v["scheme"])
        body = v["body"] if isinstance(v["body"], str) else json.dumps(v["body"])
        out.append((name, body.encode(), v.get("headers") or {}))
    return out


def seed_verify_and_normalize():
    for vendor, body, headers in bodies():
        if vendor not in VENDORS:
            continue
        i = VENDORS.index(vendor)
        put("verify", verify_seed(i, 0, headers, body))  # as sent, against our keys
        put("verify", verify_seed(i, 1, {}, body))  # signed by the vendor's signer
        put("verify", verify_seed(i, 3, {}, body))  # signed, one byte flipped
        put("verify", verify_seed(i, 1 | 4, {k: v for k, v in list(headers.items())[:1]}, body))
        put("verify", verify_seed(i, 1 | 8, {}, body, skew=-(2**31)))
        put("normalize", bytes([i]) + body)
    for i in range(len(VENDORS), len(VENDORS) + 3):  # the extra generic_hmac profiles
        put("verify", verify_seed(i, 1, {}, b'{"id":"x","severity":"high"}'))
        put("normalize", bytes([i]) + b'{"id":"x","severity":"high","title":"t"}')


def frame(payload):
    return struct.pack("<II", len(payload), zlib.crc32(payload) & 0xFFFFFFFF) + payload


def record(seq, sinks, event):
    p = bytes([1]) + struct.pack("<Qq", seq, 1_700_000_000_000) + bytes([len(sinks)])
    for s in sinks:
        p += bytes([len(s)]) + s.encode()
    return frame(p + event)


def chunks(framed):
    """The payloads of `framed` as `[len u16][payload]` chunks (the targets' reframe input)."""
    out = b""
    while len(framed) >= 8:
        n = struct.unpack("<I", framed[:4])[0]
        out += struct.pack("<H", min(n, 65535)) + framed[8:8 + n]
        framed = framed[8 + n:]
    return out


def dead_letter(seq, error, event):
    e = error.encode()
    p = bytes([1]) + struct.pack("<QqqIH", seq, 1, 2, 3, len(e)) + e + event
    return frame(p)


def seed_spool():
    recs = [record(n, s, b'{"n":%d}' % n) for n, s in [(1, ["a", "b"]), (2, ["a"]), (3, ["b"]), (4, ["c"])]]
    seg = b"".join(recs)
    dl = dead_letter(2, "HTTP 400", b'{"n":2}') + dead_letter(5, "too old", b"{}")
    for data in [seg, seg[:-3], dl, dl + b"\x00" * 5, recs[0] + dl]:
        put("spool_frame", b"\x00" + data)
        put("spool_frame", b"\x01" + chunks(data))

    def segment(step, data):
        return bytes([step]) + struct.pack("<H", len(data)) + data

    put("spool_recover", bytes([0, 0]) + segment(1, seg))
    put("spool_recover", bytes([1 | 4, 2]) + segment(1, recs[0] + recs[1]) + segment(2, recs[2] + recs[3][:-2]))
    put("spool_recover", bytes([1 | 4 | 8, 1]) + segment(1, recs[0]) + segment(1, recs[1] + b"junk") + dl)
    put("spool_recover", bytes([2 | 16, 0]) + segment(1, recs[0]) + segment(1, recs[1]) + segment(1, recs[2]))
    put("spool_recover", bytes([1 | 4 | 32, 1]) + segment(1, chunks(recs[0] + recs[1])) + segment(2, chunks(recs[2] + recs[3])))
    put("spool_recover", bytes([0 | 8 | 32 | 64, 0]) + segment(1, chunks(seg)) + chunks(dl))


def seed_config():
    for path in sorted(glob.glob(os.path.join(ROOT, "config", "*.toml"))):
        put("config", open(path, "rb").read())
    put("config", b'[[sources]]\nid = "gh"\nvendor = "github"\nsecrets = "${GH_SECRET}"\nsinks = ["out"]\n'
                  b'[[sinks]]\nid = "out"\ntype = "splunk_hec"\nurl = "${SECRET}"\ntoken = ["${TOKEN}"]\n')
    put("config", b'[server]\nlisten = "127.0.0.1:${PORT}"\n[replay]\nstore = "redis"\nredis_url = "redis://:${SECRET}@h"\n'
                  b'[[sources]]\nid = ".."\nvendor = "stripe"\nsecrets = ["${SECRET}"]\ntolerance = "20000y"\nsinks = ["out"]\n')


if __name__ == "__main__":
    seed_verify_and_normalize()
    seed_spool()
    seed_config()
    for t in sorted(os.listdir(OUT)):
        print(f"{t}: {len(os.listdir(os.path.join(OUT, t)))} seeds")
