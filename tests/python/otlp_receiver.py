"""An OTLP/HTTP trace receiver for tests/tracing.rs, built on the official
`opentelemetry-proto` package (scripts/test-deps.sh installs it).

Usage: otlp_receiver.py OUT.jsonl. Listens on 127.0.0.1 (a free port), prints
`listening on PORT`, and for every `POST /v1/traces` with `content-type:
application/x-protobuf` decodes the `ExportTraceServiceRequest` and appends one JSON line per
span to OUT.jsonl. Anything else is answered with an error and logged to OUT.jsonl as
`{"error": ...}`, so the test sees it.
"""
import http.server
import json
import sys
import threading

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

LOCK = threading.Lock()


def value(v: common_pb2.AnyValue):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind) if kind else None


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    out_path = ""

    def log_message(self, *args):
        pass

    def write(self, lines):
        with LOCK, open(self.out_path, "a", encoding="utf-8") as out:
            for line in lines:
                out.write(json.dumps(line) + "\n")

    def answer(self, status, body=b""):
        self.send_response(status)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        ctype = self.headers.get("content-type", "")
        if self.path != "/v1/traces" or ctype != "application/x-protobuf":
            self.write([{"error": f"unexpected {self.path} {ctype!r}"}])
            self.answer(404 if self.path != "/v1/traces" else 415)
            return
        request = trace_service_pb2.ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception as e:  # a body the official decoder refuses is the bug under test
            self.write([{"error": f"undecodable body: {e}"}])
            self.answer(400)
            return
        lines = []
        for rs in request.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    lines.append({
                        "resource": resource,
                        "scope": ss.scope.name,
                        "schema_url": ss.schema_url,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "flags": span.flags,
                        "name": span.name,
                        "kind": span.kind,
                        "start": span.start_time_unix_nano,
                        "end": span.end_time_unix_nano,
                        "status_code": span.status.code,
                        "status_message": span.status.message,
                        "attributes": attributes(span.attributes),
                    })
        self.write(lines)
        self.answer(200, trace_service_pb2.ExportTraceServiceResponse().SerializeToString())


def main():
    Handler.out_path = sys.argv[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
