#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/TARGET/) from the golden
transcripts: tests/golden/translate/*.json (OpenAI <-> Anthropic pairs),
tests/golden/conformance/*.json (every client format against every provider, each case
with its client request, the provider's request and answer, and the client's answer), and
the semantic-cache dev pairs (../shared/reference/minilm/pairs-dev.jsonl, when present).

Each seed is laid out as its target reads its input (see the doc comment of each target).
Deterministic: running it again rewrites the same files. Run from anywhere:
    python3 fuzz/seeds.py
"""

import glob
import json
import os
import shutil
import struct
import zlib

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)
CORPUS = os.path.join(FUZZ, "corpus")

# Wire format indices of fuzz/src/lib.rs WIRES: a target's "pick" byte is
# client + 5 * provider.
WIRE = {"chat": 0, "openai": 0, "messages": 1, "anthropic": 1, "responses": 2,
        "gemini": 3, "bedrock": 4}
ENDPOINT_PATH = {"chat": "/v1/chat/completions", "messages": "/v1/messages",
                 "responses": "/v1/responses"}
# json_model_splice picks its endpoint by the input length modulo 4.
SPLICE_ENDPOINT = {"chat": 0, "messages": 1, "responses": 2}

seeds = {}


def add(target, name, data):
    """Adds a seed unless the target already has one with the same bytes."""
    if isinstance(data, str):
        data = data.encode()
    files = seeds.setdefault(target, {})
    if data not in files.values():
        files[name] = data


def js(value):
    return json.dumps(value, separators=(",", ":")).encode()


def sse(events):
    """SSE text of transcript events ({'event': name?, 'data': value or '[DONE]'})."""
    out = b""
    for e in events:
        if "event" in e and e["event"]:
            out += b"event: " + e["event"].encode() + b"\n"
        data = e.get("data")
        out += b"data: " + (data.encode() if isinstance(data, str) else js(data)) + b"\n\n"
    return out


def aws_frame(headers, payload):
    """One AWS event-stream frame with string headers (as translate::encode_frame writes)."""
    hdr = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        hdr += bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v
    total = 12 + len(hdr) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hdr))
    frame = prelude + struct.pack(">I", zlib.crc32(prelude)) + hdr + payload
    return frame + struct.pack(">I", zlib.crc32(frame))


def http1_request(path, body, chunked=False, extra=()):
    head = [f"POST {path} HTTP/1.1", "host: gateway.local", "authorization: Bearer sk-fuzz",
            "content-type: application/json"]
    head += list(extra)
    if chunked:
        head.append("transfer-encoding: chunked")
        half = len(body) // 2
        payload = b""
        for part in (body[:half], body[half:]):
            if part:
                payload += b"%x;ext=1\r\n" % len(part) + part + b"\r\n"
        payload += b"0\r\nx-trailer: 1\r\n\r\n"
    else:
        head.append(f"content-length: {len(body)}")
        payload = body
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


def h2_request(path, body, stream_id=1):
    """An HTTP/2 client's frames after the preface, written with the `h2` package."""
    import h2.config
    import h2.connection
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.data_to_send()  # the preface: the target adds it
    conn.send_headers(stream_id, [(":method", "POST"), (":scheme", "https"),
                                  (":authority", "gateway.local"), (":path", path),
                                  ("content-type", "application/json"),
                                  ("content-length", str(len(body)))])
    conn.send_data(stream_id, body, end_stream=True)
    settings = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    settings.initiate_connection()
    frames = settings.data_to_send()[24:]  # SETTINGS after the preface
    return frames + conn.data_to_send()


def transcripts():
    """(name, client, provider, case) for every golden transcript."""
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/golden/conformance/*.json"))):
        doc = json.load(open(path))
        for case, c in sorted(doc["cases"].items()):
            up = c["upstream_response"]
            yield {
                "name": f"{doc['client']}-{doc['provider']}-{case}",
                "client": doc["client"], "provider": doc["provider"],
                "request": c["client_request"], "status": up.get("status", 200),
                "upstream": up["body"], "client_body": c["client_response"].get("body"),
                "upstream_request": c.get("upstream_request", {}).get("body"),
            }
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/golden/translate/*.json"))):
        doc = json.load(open(path))
        client, provider = (("chat", "anthropic") if doc["pair"].startswith("openai_client")
                            else ("messages", "openai"))
        up = doc["upstream_response"]
        is_error = "error" in os.path.basename(path)
        yield {
            "name": "golden-" + os.path.basename(path)[:-5], "client": client,
            "provider": provider, "request": doc["client_request"],
            "status": 429 if is_error else 200, "upstream": up,
            "client_body": doc["client_response"], "upstream_request": doc["upstream_request"],
        }


def main():
    for t in transcripts():
        name, client, provider = t["name"], t["client"], t["provider"]
        request = js(t["request"])
        pick = WIRE[client] + 5 * WIRE[provider]
        path = ENDPOINT_PATH[client]
        add("translate_request", name, bytes([pick]) + request)
        add("cache_key", name, request)
        add("json_strings", name, request)
        pad = (SPLICE_ENDPOINT[client] - len(request)) % 4
        add("json_model_splice", name, request + b" " * pad)
        if t["upstream_request"] is not None:
            add("json_strings", name + "-upstream", js(t["upstream_request"]))
        up = t["upstream"]
        streamed = isinstance(up, list)
        if not streamed:
            body = js(up)
            add("json_strings", name + "-answer", body)
            add("translate_response", name,
                bytes([pick]) + struct.pack(">H", t["status"]) + body + b"\0" + request)
        elif provider == "bedrock":
            frames = b"".join(aws_frame(e["frame"], js(e["payload"])) for e in up)
            add("aws_eventstream", name, b"\0" + frames)
            add("aws_eventstream", name + "-fixed", b"\1" + frames)
            text = b"".join(b"event: " + e["frame"].get(":event-type", "").encode() + b"\n"
                            + b"data: " + js(e["payload"]) + b"\n\n" for e in up)
            add("translate_stream", name, bytes([pick, 0x41]) + text + b"\0" + request)
        else:
            text = sse(up)
            add("sse_scanner", name, b"\x07" + text)
            add("translate_stream", name, bytes([pick, 0x21]) + text + b"\0" + request)
            add("http1_chunked", name,
                b"\x35" + b"%x\r\n" % len(text) + text + b"\r\n0\r\n\r\n")
        if isinstance(t["client_body"], list):
            add("sse_scanner", name + "-client", b"\x40" + sse(t["client_body"]))
        if "text" in name or "tools" in name:
            add("http1_head", name, http1_request(path, request))
            add("http1_head", name + "-chunked",
                http1_request(path, request, chunked=True) + b"x")
            add("http2_server", name, b"\x10" + h2_request(path, request))

    # Heads the server must refuse or treat specially.
    for name, head in {
        "get-models": b"GET /v1/models HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer k\r\n\r\n",
        "http10-keepalive": b"GET /admin/live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "expect-continue": b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\n"
                           b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
        "te-and-cl": b"POST /v1/messages HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Length: 3\r\n\r\n0\r\n\r\n",
        "cl-list": b"POST /v1/responses?x=1 HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n{}",
        "bare-lf": b"GET / HTTP/1.1\nHost: g\n\n",
        "preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    }.items():
        add("http1_head", name, head)

    pairs = os.path.join(ROOT, "..", "shared", "reference", "minilm", "pairs-dev.jsonl")
    if os.path.exists(pairs):
        for i, line in enumerate(open(pairs)):
            if i >= 120:
                break
            p = json.loads(line)
            truncated = "\0" if i % 10 == 0 else ""
            add("cache_guard", f"pair-{i:03}-{p['label']}",
                p["a"] + "\0" + p["b"] + truncated)

    for target, files in sorted(seeds.items()):
        d = os.path.join(CORPUS, target)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, data in sorted(files.items()):
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(files)} seeds, {sum(map(len, files.values()))} bytes")


if __name__ == "__main__":
    main()
