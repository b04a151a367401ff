"""The web server around the page, for a server that runs for days in public: request bodies bounded before they
are read whole, a sentence for every refusal of the HTTP API, 404 for what does not exist, and gradio's sessions
forgotten once nothing in them can be needed again.

Gradio keeps a session (gradio.state_holder.SessionState) for every session hash it has seen, up to
`state_session_capacity` (10,000 by default), and each holds a config of every component of the page plus the last
value each input had, the text sent included. An HTTP API call that names no session gets a session of its own, so
every such call left one behind (gradio-app/gradio#11602; its fix, #13756, leaves "reducing what a closed session
holds" for a change of its own). `Sweeper` forgets the sessions that hold no gr.State value and no unread result;
`Guard` answers bad requests before gradio parses them. docs/design.md says how this was found.
"""
import asyncio
import contextlib
import datetime
import json
import logging
import re
import time

from starlette.middleware import Middleware

from charrnn import limits
from engine.memory import Trimmer

from .common import shorten

MAX_BODY = 4 * 1024 * 1024  # bytes: the largest request (/score's two 100,000-character texts, JSON-escaped) fits
STATE_SESSIONS = 1000  # sessions holding a gr.State value (candidates, a song) that gradio keeps, the least recent go
SWEEP_EVERY = 5.0  # seconds
KEEP_IDLE = 60.0  # seconds an empty session its caller named (gradio_client, a page) waits for its next request
UNREAD = 60.0  # seconds a finished request's result waits for its reader (a /call GET) before it is dropped
# The HTTP API: /call/<api> takes {"data": [...]}, /call/v2/<api> the arguments by name (gradio checks those itself).
CALL = re.compile(r".*/gradio_api/call/(?P<v2>v2/)?(?P<api>[^/]+)(?:/(?P<event>[^/]+))?/?")
UPLOAD = "/gradio_api/upload"
BUSY = "The server is busy: its queue of requests is full. Try again in a moment."
log = logging.getLogger(__name__)


def app_kwargs(blocks) -> dict:
    """What demo.launch passes to the FastAPI app: the guard around every request and the sweeper's task."""
    @contextlib.asynccontextmanager
    async def lifespan(_app):
        task = asyncio.create_task(Sweeper(blocks).run())
        try:
            yield
        finally:
            task.cancel()

    return {"middleware": [Middleware(Guard, blocks=blocks)], "lifespan": lifespan}


class Refusal(Exception):
    def __init__(self, status: int, sentence: str):
        super().__init__(sentence)
        self.status, self.sentence = status, sentence


class Guard:
    """ASGI middleware: a body over MAX_BODY gets 413 before it is read whole; a call to /gradio_api/call/<api> names
    an endpoint that exists (404), sends a JSON object whose `data` fits the endpoint (422, each with a sentence; a
    missing argument that has a default gets it, as gradio_client fills it in), and reads a result that exists (404)."""

    def __init__(self, app, blocks):
        self.app, self.blocks, self.endpoints, self.listed = app, blocks, None, []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        call = CALL.fullmatch(scope["path"])
        posted = scope["method"] in ("POST", "PUT", "PATCH")
        if posted and scope["path"].endswith(UPLOAD):  # gradio streams a file to disk, within launch's max_file_size
            if declared_length(scope) > limits.UPLOAD_BYTES:
                return await refuse(send, Refusal(413, f"The file is larger than this server takes "
                                                       f"({limits.UPLOAD_BYTES:,} bytes)."))
            return await self.app(scope, receive, send)
        try:
            if call:
                self.check_call(call["api"], call["event"])
            if posted:
                body = await read_body(scope, receive)
                if body is None:  # the client went away while sending
                    return
                if call and not call["event"] and not call["v2"]:
                    body = self.arguments(call["api"], body)
                receive = replayed(body, receive)
        except Refusal as refusal:
            return await refuse(send, refusal)
        await self.app(scope, receive, busy_worded(send) if call and posted else send)

    def api(self) -> dict[str, list[dict]]:
        """Each endpoint's parameters, as gradio documents them, the undocumented (/train) too (built once, on the
        first call)."""
        if self.endpoints is None:
            named = self.blocks.get_api_info(all_endpoints=True)["named_endpoints"]
            self.listed = [name for name, info in named.items() if info["api_visibility"] == "public"]
            self.endpoints = {name.lstrip("/"): info["parameters"] for name, info in named.items()}
        return self.endpoints

    def check_call(self, api: str, event: str | None) -> None:
        if api not in self.api():
            raise Refusal(404, f"There is no endpoint /{shorten(api)}; the endpoints are {', '.join(self.listed)}.")
        if event is not None and not result_waiting(self.blocks._queue, event):
            raise Refusal(404, f"There is no result for event {shorten(event)}: it is unknown, already read, or was "
                               f"not read within {UNREAD:.0f} s of its end.")

    def arguments(self, api: str, body: bytes) -> bytes:
        """The body with every argument the caller left out that has a default, or a Refusal naming what is wrong."""
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise Refusal(422, f"The request body is not valid JSON: {e}.") from None
        if not isinstance(request, dict) or not isinstance(request.get("data"), list):
            raise Refusal(422, 'The request body must be a JSON object whose "data" is the list of arguments, '
                               f'e.g. {{"data": [...]}}; got {shorten(json.dumps(request, allow_nan=True))}.')
        data, parameters = request["data"], self.api()[api]
        names = ", ".join(p["parameter_name"] for p in parameters)
        if len(data) > len(parameters):
            takes = f"at most {len(parameters)} arguments ({names})" if parameters else "no arguments"
            raise Refusal(422, f"/{api} takes {takes}; got {len(data)}.")
        missing = [p for p in parameters[len(data):] if not p["parameter_has_default"]]
        if missing:
            raise Refusal(422, f"/{api} needs {', '.join(p['parameter_name'] for p in missing)} as well: its "
                               f"arguments are {names}, in this order; got {len(data)}.")
        if len(data) == len(parameters):
            return body
        request["data"] = data + [p["parameter_default"] for p in parameters[len(data):]]
        return json.dumps(request, ensure_ascii=False, allow_nan=True).encode()


def result_waiting(queue, event: str) -> bool:
    """Whether gradio still has event's messages for a reader: it is among its session's events not yet read to the
    end. Gradio answers otherwise with a 404 after the stream has begun, which a client sees as a dropped
    connection."""
    session = next((s for s, ids in list(queue.pending_event_ids_session.items()) if event in ids), None)
    return session is not None and session in queue.pending_messages_per_session


async def read_body(scope, receive) -> bytes | None:
    """The request's body, read whole up to MAX_BODY (a Refusal beyond), or None if the client went away."""
    if declared_length(scope) > MAX_BODY:
        raise too_large()
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_BODY:
            raise too_large()
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def declared_length(scope) -> int:
    """The body's length as its headers declare it, 0 where they do not."""
    declared = dict(scope["headers"]).get(b"content-length", b"")
    return int(declared) if declared.isdigit() else 0


def too_large() -> Refusal:
    return Refusal(413, f"The request body is larger than this server takes ({MAX_BODY:,} bytes); every text field's "
                        "limit is in the API docs.")


def replayed(body: bytes, receive):
    """receive, with the body already read given back first."""
    sent = False

    async def again():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}
    return again


def busy_worded(send):
    """send, with gradio's 503 for a full queue answered as what it is: 429, too many requests, in a sentence (its
    other 503s, such as a queue stopped for a shutdown, pass as they are)."""
    held = None

    async def wrapped(message):
        nonlocal held
        if message["type"] == "http.response.start" and message["status"] == 503:
            held = message  # the body says which 503 this is
            return
        if held is not None and message["type"] == "http.response.body":
            if b"Queue is full" in message.get("body", b""):
                return await refuse(send, Refusal(429, BUSY))
            await send(held)
            held = None
        await send(message)
    return wrapped


async def refuse(send, refusal: Refusal) -> None:
    payload = json.dumps({"detail": refusal.sentence}).encode()
    await send({"type": "http.response.start", "status": refusal.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


class Sweeper:
    """Every SWEEP_EVERY seconds, on the server's event loop (where gradio changes these structures too): forgets
    each session with no request running or waiting, no unread result, no gr.State value and no component an event
    updated, once it is its own request's (the caller named no session) or has been idle KEEP_IDLE seconds; a result
    unread UNREAD seconds after its request ended is dropped. Such a session is only a copy of the page's defaults
    and of the last inputs: gradio makes it anew, the same, if its hash comes again."""

    def __init__(self, blocks):
        self.blocks, self.quiet_since, self.trimmer = blocks, {}, Trimmer()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                forgotten = self.sweep(now := time.monotonic())
            except Exception:  # a sweeper that died would let sessions pile up again, unseen
                log.exception("the session sweeper failed; it sweeps again in %.0f s", SWEEP_EVERY)
                continue
            if forgotten and self.trimmer.due():
                await asyncio.to_thread(self.trimmer.trim)

    def sweep(self, now: float) -> int:
        """Forget what is no longer needed; returns how many sessions were forgotten."""
        queue, holder = self.blocks._queue, self.blocks.state_holder
        forgotten = 0
        for session in set(holder.session_data) | set(queue.pending_event_ids_session) | set(self.quiet_since):
            pending = queue.pending_event_ids_session.get(session, set())
            if any(event in queue.event_ids_to_events for event in pending):  # running or waiting
                self.quiet_since.pop(session, None)
                continue
            quiet = now - self.quiet_since.setdefault(session, now)
            if (used := holder.time_last_used.get(session)) is not None:  # a request that began and ended unseen
                quiet = min(quiet, (datetime.datetime.now() - used).total_seconds())
            if pending and quiet >= UNREAD:
                pending.clear()  # nobody came for these results
            state = holder.session_data.get(session)
            if pending or (state is not None and self.holds_something(state)):
                continue
            if session in queue.event_analytics or quiet >= KEEP_IDLE:
                self.forget(session)
                forgotten += 1
        return forgotten

    def holds_something(self, state) -> bool:
        """A gr.State value, or a component updated by an event (a list's new choices, say)."""
        defaults = self.blocks.default_config.blocks
        return bool(state.state_data) or any(block is not defaults.get(key)
                                             for key, block in state.blocks_config.blocks.items())

    def forget(self, session: str) -> None:
        queue, holder = self.blocks._queue, self.blocks.state_holder
        with holder.lock:
            holder.session_data.pop(session, None)
            holder.time_last_used.pop(session, None)
        queue.pending_event_ids_session.pop(session, None)
        queue.pending_messages_per_session.pop(session, None)
        self.quiet_since.pop(session, None)
