"""Stream format presets at the unit level: every fixture event through the scanner and the
kernel's classify (C and Python) under its preset, and the protocol tests' edge cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamboost._stream import NATIVE, _kernel
from streamboost._stream._kernel import PyScanBase
from streamboost._stream._presets import PRESETS, STREAM_FORMATS, StreamPreset, stream_preset
from streamboost._stream._protocols import langgraph_content, vercel_line_content
from streamboost._stream._scanner import EventScanner
from streamboost._stream._table import CONTENT, FORMAT_LINES, FORMAT_SSE, GENERAL, OTHER

FIXTURES = {
    path.stem: json.loads(path.read_text())
    for path in sorted((Path(__file__).parent / "fixtures" / "streams").glob("*.json"))
}


def scanner(preset: StreamPreset, fmt: int) -> EventScanner:
    sse = fmt == FORMAT_SSE
    return EventScanner(
        fmt,
        critical=preset.critical,
        metadata=preset.metadata,
        content=preset.content,
        openai_chat=preset.openai_chat,
        protocol_content=preset.sse_content if sse else preset.line_content,
        protocol_critical=None if sse else preset.line_critical,
    )


def native_twin(scan: EventScanner) -> Any:
    twin = _kernel.ScanBase()
    for name in ("fmt", "fast", "pending", "metadata", "critical_names", "content_names"):
        setattr(twin, name, getattr(scan, name))
    twin.openai_chat = scan.openai_chat
    return twin


@pytest.mark.parametrize("name", sorted(FIXTURES))
@pytest.mark.parametrize("which", ["preset", "auto"])
def test_each_fixture_event_is_classified_by_its_role(name: str, which: str) -> None:
    fixture = FIXTURES[name]
    if which == "auto" and not fixture["auto"]:
        pytest.skip("auto does not recognise this protocol")
    preset = PRESETS[fixture["stream_format"]]  # auto reads the Vercel AI SDK's header
    if which == "auto" and fixture["stream_format"] != "vercel-ai":
        preset = PRESETS["auto"]
    fmt = FORMAT_SSE if fixture["content_type"].startswith("text/event-stream") else FORMAT_LINES
    for event in fixture["events"]:
        body = event["body"].encode()
        scan = scanner(preset, fmt)
        kind = PyScanBase.classify(scan, body)
        if NATIVE:
            assert native_twin(scan).classify(body) == kind
        if kind != GENERAL:  # the kernel is sure: only a non-critical event
            assert kind == (CONTENT if event["role"] == "content" else OTHER), body
            assert event["role"] != "critical"
        assert scan.feed(body) == len(body)
        assert scan.content == (event["role"] == "content"), body
        if event["role"] == "critical":
            assert scan.critical, body


def test_fast_presets_keep_the_kernel_path() -> None:
    for name in ("auto", "openai", "openai-responses", "anthropic", "plain"):
        assert scanner(PRESETS[name], FORMAT_SSE).fast, name
    assert scanner(PRESETS["vercel-ai"], FORMAT_SSE).fast
    assert not scanner(PRESETS["vercel-ai"], FORMAT_LINES).fast
    assert not scanner(PRESETS["langgraph"], FORMAT_SSE).fast


def test_a_data_only_anthropic_event_counts_by_its_type() -> None:
    scan = scanner(PRESETS["anthropic"], FORMAT_SSE)
    delta = b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":"a"}}\n\n'
    assert PyScanBase.classify(scan, delta) == CONTENT
    assert PyScanBase.classify(scan, b'data: {"type":"message_start"}\n\n') == OTHER
    assert PyScanBase.classify(scan, b'data: {"text":"untyped"}\n\n') == OTHER
    if NATIVE:
        assert native_twin(scan).classify(delta) == CONTENT


def test_langgraph_counts_ai_output_only() -> None:
    ai = {"type": "AIMessageChunk", "content": "Hi", "tool_call_chunks": []}

    def event(name: str, data: Any) -> bytes:
        return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    assert langgraph_content(event("messages", [ai, {"langgraph_node": "agent"}]))
    assert langgraph_content(event("messages|agent:1f0a", [ai, {}]))  # a subgraph's event
    assert not langgraph_content(event("messages", [{**ai, "content": ""}, {}]))
    assert langgraph_content(
        event("messages", [{**ai, "content": "", "tool_call_chunks": [{"name": "f"}]}, {}])
    )
    blocks = [{"type": "text", "text": "Hi", "index": 0}]
    assert langgraph_content(event("messages", [{**ai, "content": blocks}, {}]))
    assert not langgraph_content(event("messages", [{"type": "tool", "content": "18 C"}, {}]))
    assert not langgraph_content(event("values", {"messages": [{"type": "ai", "content": "x"}]}))
    assert not langgraph_content(b"event: messages\ndata: not json\n\n")
    # A data field split over lines, CRLF line endings.
    assert langgraph_content(
        b'event: messages/partial\r\ndata: [{"type": "ai",\r\ndata: "content": "x"}]\r\n\r\n'
    )


def test_vercel_lines() -> None:
    assert vercel_line_content(b'0:"Hello"\n')
    assert not vercel_line_content(b'0:""\n')
    assert not vercel_line_content(b'f:{"messageId":"m"}\n')
    assert vercel_line_content(b'9:{"toolCallId":"c","toolName":"f","args":{}}\n')


def test_stream_preset_names_the_choices() -> None:
    assert stream_preset("anthropic") is PRESETS["anthropic"]
    with pytest.raises(ValueError) as error:
        stream_preset("Anthropic")
    message = str(error.value)
    assert "stream_format='Anthropic'" in message
    assert all(repr(name) in message for name in STREAM_FORMATS)
