"""Check lmlb end to end in front of two real llama.cpp servers.

scripts/e2e-real-engine.sh starts two llama-cpp-python servers serving SmolLM2-135M-Instruct
under the instance ids `smollm2-135m-instruct` and `smollm2-135m-instruct:2`, starts lmlb in
front of both, then runs this script with the virtual environment's Python. Each check raises
CheckFailed with the evidence when lmlb misbehaves, and the script exits with status 1.

Behaviour of the llama-cpp-python 0.3.36 server that the checks rely on, seen by running it:
- It accepts any `model` value, unknown names included, and returns that value as the `model` of
  the response and of every stream chunk. So a response whose `model` equals its
  `x-lmlb-instance` header shows that lmlb rewrote the request's `model` to the instance it chose.
- It runs one generation at a time behind a lock, and its `GET /v1/models` waits for that lock.
  With `--interrupt_requests True` (its default), a request waiting for the lock ends a running
  stream early: `data: [DONE]` without a chunk carrying `finish_reason`. lmlb polls `/v1/models`
  every refresh interval, so the servers run with `--interrupt_requests False`, and a stream that
  lacks `finish_reason` fails the check.
- Its uvicorn access log has one line per request (`"POST /v1/chat/completions HTTP/1.1" 200`),
  so the log shows how many requests reached each server. On a client disconnect during a stream
  it prints `Disconnected from client`.

Uses only the standard library and the `openai` package.
"""

import argparse
import http.client
import itertools
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import openai

MODEL = "smollm2-135m-instruct"

# Seconds for one HTTP exchange with lmlb. A 32-token stream took about 1 s with both servers
# busy on a 2-core machine, so this timeout only stops a request that hangs.
HTTP_TIMEOUT = 120.0

# NOTE: lmlb reads each upstream's listing with a fixed 5 s timeout, and llama-cpp-python's
# `/v1/models` waits for the running generation. So a generation longer than 5 s makes lmlb mark
# its server down while it works. Every generation here that runs to its end stays far below 5 s.
SHORT_COMPLETION_TOKENS = 16
STREAM_TOKENS = 32
# About 10 s of generation on one core. If lmlb kept reading the upstream stream after the client
# left, the server would log no disconnect within SLOT_RELEASE_TIMEOUT and the check would fail.
DISCONNECT_STREAM_TOKENS = 600
CHUNKS_BEFORE_DISCONNECT = 3

# A stream relayed as it is generated spreads its tokens over about STREAM_TOKENS * 15 ms or
# more, but a buffered one arrives within a millisecond or two.
MIN_STREAM_SPREAD_SECONDS = 0.1
MIN_STREAM_GAPS = 3
STREAM_GAP_SECONDS = 0.005

SLOT_RELEASE_TIMEOUT = 5.0
DOWN_DETECTION_TIMEOUT = 15.0
READY_TIMEOUT = 60.0


class CheckFailed(Exception):
    """A failed check, with the evidence in its message."""


@dataclass
class Server:
    """A llama.cpp server started by the shell script, in its own process group."""

    instance: str
    url: str
    pid: int
    log_path: str

    def count_posts(self):
        """Count the requests this server has logged (one uvicorn access line each)."""
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return sum(1 for line in log if '"POST /v1/' in line)

    def count_disconnects(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return sum(1 for line in log if "Disconnected from client" in line)


@dataclass
class Completion:
    """A non-streaming response relayed by lmlb."""

    status: int
    instance: str
    upstream: str
    body: dict
    text: str


@dataclass
class Stream:
    """A streaming response relayed by lmlb, with the arrival time of each content chunk."""

    status: int
    instance: str
    upstream: str
    chunks: list = field(default_factory=list)
    content_times: list = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    done: bool = False


class Lmlb:
    """HTTP client for lmlb's balanced and status endpoints."""

    def __init__(self, url):
        parsed = urllib.parse.urlsplit(url)
        self.url = url
        self.host = parsed.hostname
        self.port = parsed.port

    def connect(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT)

    def get_json(self, path):
        connection = self.connect()
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise CheckFailed(f"GET {path} returned {response.status}: {raw[:500]!r}")
        return json.loads(raw)

    def post(self, path, body):
        """Send a non-streaming request and return its status, headers and parsed body."""
        connection = self.connect()
        try:
            connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise CheckFailed(
                f"POST {path} returned {response.status} with a body that is not JSON: "
                f"{raw[:500]!r}"
            ) from None
        return response.status, response, parsed

    def complete(self, body):
        """Send a non-streaming chat completion that must succeed, and return its response."""
        status, response, parsed = self.post("/v1/chat/completions", body)
        if status != 200:
            raise CheckFailed(f"chat completion for {body['model']!r} returned {status}: {parsed}")
        instance = response.getheader("x-lmlb-instance")
        upstream = response.getheader("x-lmlb-upstream")
        if not instance or not upstream:
            raise CheckFailed(
                f"response lacks x-lmlb-instance or x-lmlb-upstream: {response.getheaders()}"
            )
        choices = parsed.get("choices") or [{}]
        text = (choices[0].get("message") or {}).get("content") or ""
        return Completion(status, instance, upstream, parsed, text)

    def open_stream(self, path, body):
        """Send a streaming request and return the open connection and its response."""
        connection = self.connect()
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            raw = response.read()
            connection.close()
            raise CheckFailed(f"stream to {path} returned {response.status}: {raw[:500]!r}")
        content_type = response.getheader("content-type", "")
        if not content_type.startswith("text/event-stream"):
            connection.close()
            raise CheckFailed(f"stream to {path} has content-type {content_type!r}")
        return connection, response


def chat_body(prompt, max_tokens, model=MODEL, stream=False, fixed_length=False):
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
    if fixed_length:
        # llama-cpp-python's extension: suppress the end-of-sequence token until this many
        # tokens, so that every stream has the same length and timing.
        body["min_tokens"] = max_tokens
    return body


def read_stream(connection, response, stop_after_chunks=None):
    """Read SSE events until `data: [DONE]`, or until `stop_after_chunks` content chunks."""
    stream = Stream(
        response.status,
        response.getheader("x-lmlb-instance") or "",
        response.getheader("x-lmlb-upstream") or "",
    )
    while True:
        line = response.readline()
        if not line:
            break
        line = line.decode("utf-8").rstrip("\r\n")
        if not line or line.startswith(":"):
            continue
        if stream.done:
            raise CheckFailed(f"stream from {stream.instance} sent {line!r} after data: [DONE]")
        if not line.startswith("data: "):
            raise CheckFailed(
                f"stream from {stream.instance} sent a line that is not SSE data: {line!r}"
            )
        payload = line[len("data: ") :]
        if payload == "[DONE]":
            stream.done = True
            continue
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise CheckFailed(
                f"stream from {stream.instance} sent a chunk that is not JSON: {payload!r}"
            ) from None
        record_chunk(stream, chunk)
        if stop_after_chunks is not None and len(stream.content_times) >= stop_after_chunks:
            return stream
    connection.close()
    return stream


def record_chunk(stream, chunk):
    stream.chunks.append(chunk)
    choice = (chunk.get("choices") or [{}])[0]
    piece = (choice.get("delta") or {}).get("content") or choice.get("text") or ""
    if piece:
        stream.text += piece
        stream.content_times.append(time.monotonic())
    if choice.get("finish_reason"):
        stream.finish_reason = choice["finish_reason"]


class LoadMonitor:
    """Poll lmlb's `/models` in the background and keep the highest load seen per instance."""

    def __init__(self, lmlb, period=0.02):
        self.lmlb = lmlb
        self.period = period
        self.max_in_flight = {}
        self.max_busy_instances = 0
        self.max_queued = 0
        self.idle_while_waiting = None
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set():
            try:
                self._record(self.lmlb.get_json("/models"))
            except (OSError, CheckFailed, ValueError, KeyError, TypeError) as error:
                self.error = error
                return
            self._stop.wait(self.period)

    def _record(self, models):
        busy = 0
        for instance in models["instances"]:
            in_flight = instance["inFlight"]
            previous = self.max_in_flight.get(instance["id"], 0)
            self.max_in_flight[instance["id"]] = max(previous, in_flight)
            busy += in_flight > 0
        self.max_busy_instances = max(self.max_busy_instances, busy)
        self.max_queued = max(self.max_queued, models["queued"])

        # lmlb takes `/models` from one consistent copy of its scheduler, so a request waiting
        # for a model while an instance of it that is up has a free slot is a scheduling fault.
        waiting = {m["id"]: m["queued"] for m in models["models"] if m["queued"] > 0}
        for instance in models["instances"]:
            idle = instance["state"] == "up" and instance["inFlight"] < instance["slots"]
            if idle and instance["model"] in waiting and self.idle_while_waiting is None:
                self.idle_while_waiting = (instance["id"], waiting[instance["model"]])

    def check_scheduling(self):
        """Check that no instance ran two requests at once or idled while a request waited."""
        if self.error is not None:
            raise CheckFailed(f"polling lmlb's /models failed: {self.error!r}")
        overloaded = {i: n for i, n in self.max_in_flight.items() if n > 1}
        if overloaded:
            raise CheckFailed(
                f"lmlb sent more than one request at a time to a one-slot instance: {overloaded}"
            )
        if self.idle_while_waiting is not None:
            instance, queued = self.idle_while_waiting
            raise CheckFailed(
                f"lmlb's /models showed {instance} with a free slot while {queued} requests waited"
            )


def wait_until(description, timeout, probe, interval=0.1):
    """Call `probe` until it returns a true value, and return that value.

    Raises CheckFailed when `timeout` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(interval)
    raise CheckFailed(f"timed out after {timeout:.0f} s waiting until {description}")


def upstream_states(lmlb):
    health = lmlb.get_json("/health")
    return health, {upstream["url"]: upstream["state"] for upstream in health["upstreams"]}


def check_routing(result, servers_by_instance):
    """Check that a Completion or Stream came from the server its headers name.

    For a Completion, also check that the server generated it for the instance lmlb chose.
    check_stream checks the `model` of each stream chunk.
    """
    server = servers_by_instance.get(result.instance)
    if server is None:
        raise CheckFailed(f"x-lmlb-instance names an unknown instance: {result.instance!r}")
    if result.upstream != server.url:
        raise CheckFailed(
            f"x-lmlb-upstream is {result.upstream!r} but instance {result.instance!r} "
            f"is served by {server.url}"
        )
    model = result.body.get("model") if isinstance(result, Completion) else None
    if model is not None and model != result.instance:
        raise CheckFailed(
            f"the server responded for model {model!r} but lmlb chose instance "
            f"{result.instance!r}: lmlb did not rewrite the request's model to the instance id"
        )


def check_posts_reached(servers, before, expected):
    """Check that each server logged exactly the expected number of new requests."""
    for server in servers:
        arrived = server.count_posts() - before[server.instance]
        expected_count = expected.get(server.instance, 0)
        if arrived != expected_count:
            raise CheckFailed(
                f"{server.url} logged {arrived} requests but lmlb's headers name it on "
                f"{expected_count} responses (a lost, duplicated or misreported request)"
            )


def count_by_upstream(completions):
    counts = {}
    for completion in completions:
        counts[completion.upstream] = counts.get(completion.upstream, 0) + 1
    return counts


def posts_snapshot(servers):
    return {server.instance: server.count_posts() for server in servers}


def expected_posts(completions):
    counts = {}
    for completion in completions:
        counts[completion.instance] = counts.get(completion.instance, 0) + 1
    return counts


# ---- checks, in the order they run ----


def check_health_both_up(lmlb, servers):
    def both_up():
        health, states = upstream_states(lmlb)
        return health if all(states.get(s.url) == "up" for s in servers) else None

    health = wait_until("/health shows both upstreams up", READY_TIMEOUT, both_up)
    if health["status"] != "healthy":
        raise CheckFailed(f"/health status is {health['status']!r} with both upstreams up")
    for upstream in health["upstreams"]:
        ids = [instance["id"] for instance in upstream["instances"]]
        server = next(s for s in servers if s.url == upstream["url"])
        if ids != [server.instance]:
            raise CheckFailed(
                f"/health lists instances {ids} on {server.url}, expected [{server.instance!r}]"
            )
    return "status healthy, both upstreams up"


def check_listing(lmlb, servers):
    listing = lmlb.get_json("/v1/models")
    models = [entry for entry in listing.get("data", []) if entry.get("id") == MODEL]
    if listing.get("object") != "list" or len(models) != 1:
        raise CheckFailed(f"/v1/models does not list {MODEL!r} once: {listing}")
    instances = sorted(models[0].get("instances") or [])
    expected = sorted(s.instance for s in servers)
    if instances != expected:
        raise CheckFailed(
            f"/v1/models lists instances {instances} for {MODEL!r}, expected {expected}"
        )
    return f"{MODEL} with instances {instances}"


def warm_up(servers):
    """Send one tiny request straight to each server, because the first generation is slower."""
    for server in servers:
        parsed = urllib.parse.urlsplit(server.url)
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=HTTP_TIMEOUT)
        body = chat_body("Hi", 4, model=server.instance)
        connection.request(
            "POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        response.read()
        connection.close()
        if response.status != 200:
            raise CheckFailed(
                f"warm-up request straight to {server.url} returned {response.status}"
            )
    return "one request straight to each server"


def check_concurrent_chats(lmlb, servers, count=8):
    servers_by_instance = {s.instance: s for s in servers}
    before = posts_snapshot(servers)
    prompts = [f"In one sentence, describe the colour number {i}." for i in range(count)]

    with LoadMonitor(lmlb) as monitor, ThreadPoolExecutor(count) as pool:
        completions = list(
            pool.map(lambda p: lmlb.complete(chat_body(p, SHORT_COMPLETION_TOKENS)), prompts)
        )
    monitor.check_scheduling()

    for completion in completions:
        check_routing(completion, servers_by_instance)
        if not completion.text.strip():
            raise CheckFailed(f"response from {completion.instance} has no text: {completion.body}")
    # How many requests each server takes depends on its speed, which other work on the machine
    # skews. The monitor has already checked that neither idled while requests waited.
    spread = count_by_upstream(completions)
    for server in servers:
        if spread.get(server.url, 0) < 1:
            raise CheckFailed(
                f"{count} concurrent chats were not spread over both servers: {spread}"
            )
    if monitor.max_queued < 1:
        raise CheckFailed(
            f"lmlb's /models never showed a request queued, so the {count} chats did not overlap"
        )
    if monitor.max_busy_instances < 2:
        raise CheckFailed(
            "lmlb's /models never showed both instances busy during 8 concurrent chats"
        )
    check_posts_reached(servers, before, expected_posts(completions))
    return f"{len(completions)} responses, by upstream {spread}, max queued {monitor.max_queued}"


def check_concurrent_streams(lmlb, servers, count=4):
    """Stream chat completions and text completions at once, and check their SSE and timing."""
    servers_by_instance = {s.instance: s for s in servers}
    before = posts_snapshot(servers)

    def run(index):
        if index % 2 == 0:
            path = "/v1/chat/completions"
            body = chat_body(
                f"Count slowly from {index} upwards.", STREAM_TOKENS, stream=True, fixed_length=True
            )
        else:
            path = "/v1/completions"
            body = {
                "model": MODEL,
                "prompt": f"Story {index}: Once upon a time",
                "max_tokens": STREAM_TOKENS,
                "min_tokens": STREAM_TOKENS,
                "stream": True,
            }
        connection, response = lmlb.open_stream(path, body)
        return path, read_stream(connection, response)

    with LoadMonitor(lmlb) as monitor, ThreadPoolExecutor(count) as pool:
        results = list(pool.map(run, range(count)))
    monitor.check_scheduling()

    for path, stream in results:
        check_stream(path, stream, servers_by_instance)
    streams = [stream for _path, stream in results]
    used = {stream.upstream for stream in streams}
    if len(used) != len(servers):
        raise CheckFailed(f"{count} concurrent streams all ran on {used}")
    check_posts_reached(servers, before, expected_posts(streams))

    spreads = [s.content_times[-1] - s.content_times[0] for s in streams]
    fewest_chunks = min(len(s.content_times) for s in streams)
    return (
        f"{count} streams of {fewest_chunks} or more content chunks, "
        f"first-to-last chunk {min(spreads):.2f}-{max(spreads):.2f} s"
    )


def check_stream(path, stream, servers_by_instance):
    where = f"stream on {path} from {stream.instance or 'no instance'}"
    check_routing(stream, servers_by_instance)
    if not stream.done:
        raise CheckFailed(f"{where} ended without data: [DONE]")
    for chunk in stream.chunks:
        if chunk.get("model") != stream.instance:
            raise CheckFailed(
                f"{where} has a chunk for model {chunk.get('model')!r}: "
                "lmlb did not rewrite the model"
            )
    if stream.finish_reason is None:
        raise CheckFailed(
            f"{where} has no chunk with finish_reason, so the generation was cut short"
        )
    if len(stream.content_times) < STREAM_TOKENS // 4:
        raise CheckFailed(f"{where} brought its text in {len(stream.content_times)} chunks")
    spread = stream.content_times[-1] - stream.content_times[0]
    gaps = sum(
        1
        for earlier, later in itertools.pairwise(stream.content_times)
        if later - earlier >= STREAM_GAP_SECONDS
    )
    if spread < MIN_STREAM_SPREAD_SECONDS or gaps < MIN_STREAM_GAPS:
        raise CheckFailed(
            f"{where} arrived all at once ({len(stream.content_times)} chunks within "
            f"{spread * 1000:.0f} ms, {gaps} gaps of {STREAM_GAP_SECONDS * 1000:.0f} ms or more): "
            "lmlb buffered the stream"
        )


def check_openai_client(lmlb, servers):
    servers_by_instance = {s.instance: s for s in servers}
    client = openai.OpenAI(
        base_url=lmlb.url + "/v1", api_key="unused", max_retries=0, timeout=HTTP_TIMEOUT
    )
    messages = [{"role": "user", "content": "Name a fruit."}]

    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, max_tokens=SHORT_COMPLETION_TOKENS
    )
    completion = raw.parse()
    instance = raw.headers.get("x-lmlb-instance")
    if instance not in servers_by_instance:
        raise CheckFailed(f"openai chat: x-lmlb-instance is {instance!r}")
    if completion.model != instance:
        raise CheckFailed(
            f"openai chat: response for model {completion.model!r} from instance {instance!r}"
        )
    if not (completion.choices[0].message.content or "").strip():
        raise CheckFailed(f"openai chat: response without text: {completion}")

    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, max_tokens=STREAM_TOKENS, stream=True
    )
    stream_instance = raw.headers.get("x-lmlb-instance")
    pieces = []
    finish_reason = None
    for chunk in raw.parse():
        if chunk.model != stream_instance:
            raise CheckFailed(
                f"openai stream: chunk for model {chunk.model!r} from instance {stream_instance!r}"
            )
        if chunk.choices:
            if chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            finish_reason = chunk.choices[0].finish_reason or finish_reason
    if len(pieces) < 2 or not "".join(pieces).strip():
        raise CheckFailed(f"openai stream: text arrived in {len(pieces)} chunks: {pieces}")
    if finish_reason is None:
        raise CheckFailed("openai stream: no chunk carried finish_reason")
    return f"chat on {instance}, stream of {len(pieces)} chunks on {stream_instance}"


def check_disconnect_frees_slot(lmlb, servers, server):
    """Leave a stream pinned to `server` after a few chunks, then use that instance again."""
    servers_by_instance = {s.instance: s for s in servers}
    body = chat_body(
        "Write a long story about a lighthouse.",
        DISCONNECT_STREAM_TOKENS,
        model=server.instance,
        stream=True,
        fixed_length=True,
    )
    disconnects_before = server.count_disconnects()
    connection, response = lmlb.open_stream("/v1/chat/completions", body)
    stream = read_stream(connection, response, stop_after_chunks=CHUNKS_BEFORE_DISCONNECT)
    if stream.instance != server.instance:
        raise CheckFailed(f"stream for instance {server.instance!r} ran on {stream.instance!r}")

    # Shut the socket down first, because close() alone leaves it open while the response's
    # file object still refers to it.
    connection.sock.shutdown(socket.SHUT_RDWR)
    response.close()
    connection.close()
    closed_at = time.monotonic()

    wait_until(
        "lmlb's /models shows no request in flight after the client disconnected",
        SLOT_RELEASE_TIMEOUT,
        lambda: not lmlb.get_json("/models")["inProgressModels"],
    )
    freed_after = time.monotonic() - closed_at
    wait_until(
        f"{server.url} logs the disconnect, which shows lmlb closed the upstream stream",
        SLOT_RELEASE_TIMEOUT,
        lambda: server.count_disconnects() > disconnects_before,
    )

    # Send to the same instance again. It gets a slot only if the disconnect freed it.
    pinned = lmlb.complete(chat_body("Say hello.", SHORT_COMPLETION_TOKENS, model=server.instance))
    check_routing(pinned, servers_by_instance)
    if pinned.instance != server.instance:
        raise CheckFailed(f"request for instance {server.instance!r} ran on {pinned.instance!r}")
    by_model = lmlb.complete(chat_body("Say goodbye.", SHORT_COMPLETION_TOKENS))
    check_routing(by_model, servers_by_instance)
    for completion in (pinned, by_model):
        if not completion.text.strip():
            raise CheckFailed(f"request after the disconnect has no text: {completion.body}")
    return (
        f"slot on {server.instance} freed {freed_after:.2f} s after the disconnect, "
        "and the next requests succeeded"
    )


def check_server_killed(lmlb, servers, victim, survivor):
    servers_by_instance = {s.instance: s for s in servers}
    survivor_before = survivor.count_posts()
    os.killpg(victim.pid, signal.SIGKILL)

    # Right after the kill, lmlb still lists the dead instance and may send some of these to it.
    # lmlb must then retry each request whose connection failed on the surviving server.
    with ThreadPoolExecutor(4) as pool:
        completions = list(
            pool.map(
                lambda i: lmlb.complete(chat_body(f"Say the number {i}.", SHORT_COMPLETION_TOKENS)),
                range(4),
            )
        )
    for completion in completions:
        check_routing(completion, servers_by_instance)
        if completion.upstream != survivor.url:
            raise CheckFailed(
                f"response after the kill came from {completion.upstream}, not {survivor.url}"
            )

    def victim_down():
        health, states = upstream_states(lmlb)
        return (
            health
            if states.get(victim.url) == "down" and states.get(survivor.url) == "up"
            else None
        )

    health = wait_until(f"/health shows {victim.url} down", DOWN_DETECTION_TIMEOUT, victim_down)
    if health["status"] != "degraded":
        raise CheckFailed(f"/health status is {health['status']!r} with one upstream down")
    if victim.instance in health["availableModels"]:
        raise CheckFailed(
            f"/health still lists {victim.instance!r} as available: {health['availableModels']}"
        )

    later = lmlb.complete(chat_body("Say yes.", SHORT_COMPLETION_TOKENS))
    check_routing(later, servers_by_instance)
    if later.upstream != survivor.url:
        raise CheckFailed(f"response with {victim.url} down came from {later.upstream}")
    check_posts_reached(
        [survivor], {survivor.instance: survivor_before}, {survivor.instance: len(completions) + 1}
    )
    return (
        f"{len(completions) + 1} responses from {survivor.url}; {victim.url} down, status degraded"
    )


def check_nothing_left_in_flight(lmlb):
    """Check that every slot taken during the run was given back and no request still waits."""
    models = lmlb.get_json("/models")
    if models["inProgressModels"] or models["queued"]:
        raise CheckFailed(
            f"lmlb's /models shows requests in flight {models['inProgressModels']} "
            f"and {models['queued']} queued after every client finished"
        )
    return "no request in flight or queued"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lmlb", required=True, help="lmlb's base URL, such as http://127.0.0.1:4321"
    )
    parser.add_argument(
        "--server",
        nargs=4,
        action="append",
        required=True,
        metavar=("INSTANCE", "URL", "PID", "LOG"),
        help="a llama.cpp server: model alias, base URL, process group id, log file (give two)",
    )
    args = parser.parse_args()
    if len(args.server) != 2:
        parser.error("give --server exactly twice")
    return args


def main():
    args = parse_args()
    lmlb = Lmlb(args.lmlb)
    servers = [Server(instance, url, int(pid), log) for instance, url, pid, log in args.server]
    first, second = servers

    checks = [
        ("/health reports both upstreams up", lambda: check_health_both_up(lmlb, servers)),
        ("/v1/models lists one model with two instances", lambda: check_listing(lmlb, servers)),
        ("warm-up", lambda: warm_up(servers)),
        (
            "8 concurrent chats spread over both servers",
            lambda: check_concurrent_chats(lmlb, servers),
        ),
        (
            "4 concurrent streams relayed chunk by chunk",
            lambda: check_concurrent_streams(lmlb, servers),
        ),
        ("openai client: chat and streaming chat", lambda: check_openai_client(lmlb, servers)),
        (
            "client disconnect mid-stream frees the slot",
            lambda: check_disconnect_frees_slot(lmlb, servers, second),
        ),
        # Killing the instance named like the model shows that the model keeps working on `:2`.
        (
            "killed server leaves rotation",
            lambda: check_server_killed(lmlb, servers, first, second),
        ),
        ("lmlb ends with no request in flight", lambda: check_nothing_left_in_flight(lmlb)),
    ]
    started = time.monotonic()
    for name, check in checks:
        check_started = time.monotonic()
        try:
            summary = check()
        except CheckFailed as failure:
            print(f"FAIL {name}: {failure}", flush=True)
            return 1
        except (OSError, http.client.HTTPException, openai.OpenAIError) as error:
            print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)
            return 1
        print(f"ok   {name} ({time.monotonic() - check_started:.1f} s): {summary}", flush=True)
    print(f"all checks passed in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
