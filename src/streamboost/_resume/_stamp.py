"""Stamping ``id: <stream>-<seq>`` on each SSE event of a response, across its messages.

The id line goes just before the blank line that ends an event (the last ``id`` field of an
event wins, so an app's own ids are overridden, and a browser sets its last event id only
when the event is dispatched). Only blocks with a ``data`` field are stamped and logged;
comment-only blocks and events named in ``unstamped_events`` (pings) pass to the live client
unstamped and are never logged, so a control frame never moves a client's last event id.
"""

from __future__ import annotations

import re

_EOL = re.compile(rb"\r\n|\r|\n")
_DATA = re.compile(rb"(?:^|[\r\n])data(?:[:\r\n]|$)")
_EVENT = re.compile(rb"(?:^|[\r\n])event: ?([^\r\n]*)")


class Stamper:
    """One response's id stamping: ``feed(chunk)`` -> (bytes for the client, logged blocks)."""

    __slots__ = ("_block", "_cr", "_line_empty", "_stamped", "_unstamped", "prefix", "seq")

    def __init__(self, sid: bytes, unstamped: frozenset[bytes]) -> None:
        self.prefix = b"id: " + sid + b"-"
        self.seq = 0  # the last id given
        self._unstamped = unstamped
        self._block: list[bytes] = []  # the unfinished block's bytes from earlier chunks
        self._cr = False  # the last chunk ended in CR: a leading LF completes that line end
        self._line_empty = True  # nothing of the current line seen yet
        self._stamped = False  # the last block ended was stamped (and logged)

    def _stampable(self, block: bytes) -> bool:
        if not (block.startswith(b"data:") or _DATA.search(block)):
            return False  # comments, retry-only blocks, empty blocks
        if self._unstamped and b"event" in block:
            names = _EVENT.findall(block)
            if names and names[-1].strip() in self._unstamped:
                return False
        return True

    def feed(self, chunk: bytes) -> tuple[bytes, list[bytes]]:
        """The chunk with ids inserted, and the stamped blocks it completed (for the log)."""
        if not chunk:
            return chunk, []
        if (
            not self._block
            and self._line_empty
            and not self._cr
            and chunk.endswith(b"\n\n")
            and chunk[0] != 0x0A
            and b"\r" not in chunk
            and b"\n\n\n" not in chunk
        ):
            return self._whole(chunk)
        out: list[bytes] = []
        logged: list[bytes] = []
        pos = 0
        if self._cr:
            self._cr = False
            if chunk[0] == 0x0A:  # the LF of a CRLF split between chunks
                pos = 1
                if self._block:
                    self._block.append(b"\n")
                elif self._stamped:
                    logged.append(b"\n")  # the logged block's blank line was CR LF
        block_from = pos
        out_from = 0
        line_start = pos if self._line_empty else -1
        lf_only = b"\r" not in chunk
        n = len(chunk)
        while True:
            if lf_only:
                if line_start == pos and pos < n and chunk[pos] == 0x0A:
                    blank, end = pos, pos + 1
                else:
                    i = chunk.find(b"\n\n", pos)
                    if i < 0:
                        line_start = n if chunk[-1] == 0x0A else -1
                        break
                    blank, end = i + 1, i + 2
            else:
                m = _EOL.search(chunk, pos)
                if m is None:
                    line_start = -1 if pos < n else line_start
                    break
                if m.start() != line_start:  # a line with content ended
                    pos = line_start = m.end()
                    if pos == n:
                        break
                    continue
                blank, end = m.start(), m.end()
            pos = line_start = end
            parts = self._block
            head = chunk[block_from:blank]
            block = b"".join((*parts, head)) if parts else head
            self._block = []
            self._stamped = stamped = self._stampable(block)
            if stamped:
                self.seq += 1
                eol = b"\r\n" if chunk[blank] == 0x0D else b"\n"
                stamp = b"%s%d%s" % (self.prefix, self.seq, eol)
                out.append(chunk[out_from:blank])
                out.append(stamp)
                out_from = blank
                logged.append(b"".join((block, stamp, chunk[blank:end])))
            block_from = end
            if pos >= n:
                break
        if block_from < n:
            self._block.append(chunk[block_from:])
        self._line_empty = line_start == n
        self._cr = chunk[-1] == 0x0D
        if not out:
            return chunk, logged
        out.append(chunk[out_from:])
        return b"".join(out), logged

    def _whole(self, chunk: bytes) -> tuple[bytes, list[bytes]]:
        """``feed`` of the usual batch: whole LF events, from a block's start, one blank line
        between them. The same bytes as the general path, split once instead of scanned."""
        blocks = chunk.split(b"\n\n")
        blocks.pop()  # the empty rest after the last blank line
        plain = b"event" not in chunk  # then a block with a data line first is stamped
        mid = b"\n" + self.prefix
        seq = self.seq
        tails: list[bytes] = []  # each block's end: its id line and blank line, or the blank
        logged = 0
        for block in blocks:
            if (plain and block.startswith(b"data:")) or self._stampable(block):
                seq += 1
                logged += 1
                tails.append(mid + str(seq).encode() + b"\n\n")
            else:
                tails.append(b"")
        self.seq = seq
        self._stamped = bool(tails[-1])
        if not logged:
            return chunk, []
        if logged == len(blocks):
            parts: list[bytes] = [b""] * (2 * logged)
            parts[0::2] = blocks
            parts[1::2] = tails
            out = b"".join(parts)
            return out, [out]
        pieces = [block + (tail or b"\n\n") for block, tail in zip(blocks, tails, strict=True)]
        return b"".join(pieces), [p for p, tail in zip(pieces, tails, strict=True) if tail]

    def rest(self) -> bytes:
        """The unfinished block at the body's end (logged raw, as the client got it)."""
        rest = b"".join(self._block)
        self._block = []
        return rest
