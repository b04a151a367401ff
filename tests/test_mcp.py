"""The app's tools over MCP, through a real MCP client (the `mcp` package, streamable HTTP, loopback only)."""
import ast
import asyncio
import math

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

import app
from test_app import LSTM
from engine.catalog import load_models
from engine.settings import Settings
from ui.generate import LOOP_NGRAM

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def served(tiny_model_dir, english_model_dir, next_line_dir):
    variants = load_models([str(tiny_model_dir), str(english_model_dir)], Settings())[0]
    demo = app.build_demo(variants, load_models([str(next_line_dir)], Settings())[1])
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True)
    yield f"{url}gradio_api/mcp/", variants
    demo.close()


def session_run(url: str, work):
    """Run work(session) in a fresh MCP session, with a deadline."""
    async def main():
        async with streamablehttp_client(url) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await work(session)
    return asyncio.run(asyncio.wait_for(main(), 60))


def payload(result):
    """A tool's result as Python data: gradio sends a dict or list as its Python literal, a string as itself."""
    assert not result.isError, result.content
    text = result.content[0].text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def test_the_tools_are_the_named_endpoints_with_their_descriptions(served):
    tools = session_run(served[0], lambda s: s.list_tools()).tools
    by_name = {t.name: t for t in tools}
    assert set(by_name) == {"generate", "candidates", "rewrite", "score", "models", "compare", "next_line"}, \
        "page-only handlers stay out"
    assert "prefix" in by_name["generate"].description and "acrostic" in by_name["generate"].inputSchema["properties"]
    for tool in ("generate", "candidates", "rewrite"):
        assert {"line_lengths", "scheme", "keywords"} <= set(by_name[tool].inputSchema["properties"])
    assert "1 for the first" in by_name["rewrite"].inputSchema["properties"]["keep"]["description"]
    assert by_name["score"].inputSchema["required"] == ["variant", "text"]


def test_generate_and_score_agree_with_the_library(served):
    url, variants = served
    model = variants[LSTM].model

    async def work(session):
        made = await session.call_tool("generate", {"variant": LSTM, "prefix": "分开", "length": 60, "seed": 3,
                                                    "lines": 2})
        scored = await session.call_tool("score", {"variant": LSTM, "text": "我想要你的微笑", "top": 3})
        listed = await session.call_tool("models", {})
        return payload(made), payload(scored), payload(listed)

    made, scored, listed = session_run(url, work)
    assert made == model.generate("分开", 60, 0.8, seed=3, lines=2, no_repeat_ngram=LOOP_NGRAM)
    expected = model.score("我想要你的微笑")
    assert math.isclose(scored["perplexity"], expected.perplexity, rel_tol=1e-6) and scored["count"] == 7
    assert [s["position"] for s in scored["surprising"]] == expected.most_surprising(3)
    assert [m["name"] for m in listed] == list(variants) and listed[0]["cell"] == "lstm"


def test_a_bad_call_is_an_error_result_not_a_broken_server(served):
    async def work(session):
        bad = await session.call_tool("score", {"variant": "gpt2", "text": "分开"})
        empty = await session.call_tool("score", {"variant": LSTM, "text": ""})
        fine = await session.call_tool("models", {})
        return bad, empty, fine

    bad, empty, fine = session_run(served[0], work)
    assert bad.isError and "Unknown model 'gpt2'" in bad.content[0].text
    assert empty.isError and "Give some text to score" in empty.content[0].text
    assert not fine.isError


def test_next_line_agrees_with_the_library(served, next_line_dir):
    from charrnn import NextLine

    async def work(session):
        return payload(await session.call_tool("next_line", {"line": "窗外的麻雀", "temperature": 0}))

    assert session_run(served[0], work) == NextLine.from_pretrained(next_line_dir).next_line("窗外的麻雀", temperature=0)


def test_co_writing_over_mcp_agrees_with_the_library(served):
    """Line lengths, a scheme and keywords through generate, and a rewrite around kept lines, as an agent calls them."""
    url, variants = served
    model = variants[LSTM].model
    form = dict(line_lengths="5,5,7,5", scheme="XAXA", keywords="我")

    async def work(session):
        made = await session.call_tool("generate", {"variant": LSTM, "prefix": "", "seed": 5, **form})
        lyric = payload(made).rstrip("\n")
        again = await session.call_tool("rewrite", {"variant": LSTM, "lyric": lyric, "keep": "1,3", "seed": 2,
                                                    **form})
        bad = await session.call_tool("generate", {"variant": LSTM, "prefix": "", "line_lengths": "0,7"})
        return lyric, payload(again), bad

    lyric, rewrites, bad = session_run(url, work)
    assert lyric + "\n" == model.generate("", 200, 0.8, seed=5, no_repeat_ngram=LOOP_NGRAM, **form)
    [new] = rewrites
    assert new == model.rewrite(lyric, "1,3", 0.8, seed=2, no_repeat_ngram=LOOP_NGRAM, **form)
    assert [new.split("\n")[k] for k in (0, 2)] == [lyric.split("\n")[k] for k in (0, 2)]
    assert bad.isError and "Line lengths must be whole numbers from 1 to 50" in bad.content[0].text
