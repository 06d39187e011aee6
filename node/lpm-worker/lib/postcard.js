'use strict';
// The subset of postcard the envelope uses (protocol/WIRE.md, "Postcard
// rules that matter"): varints, zigzag, strings, bytes, Option, Result, Vec,
// f64 and the 16-byte Uuid. Payloads never pass through here: they are JSON.

const { MalformedFrame } = require('./errors');

// Varint byte limits and maxima per width, as postcard's decoder checks them.
const U16 = { bytes: 3, max: 0xffffn };
const U32 = { bytes: 5, max: 0xffffffffn };
const U64 = { bytes: 10, max: 0xffffffffffffffffn };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Appends postcard values to a growing buffer. */
class Writer {
  constructor(capacity = 64) {
    this.buf = Buffer.allocUnsafe(capacity);
    this.len = 0;
  }

  reserve(extra) {
    if (this.len + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + extra) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.buf.copy(bigger, 0, 0, this.len);
    this.buf = bigger;
  }

  u8(byte) {
    this.reserve(1);
    this.buf[this.len++] = byte;
    return this;
  }

  bool(value) {
    return this.u8(value ? 1 : 0);
  }

  /** An unsigned varint from a non-negative safe integer or a BigInt. */
  varint(value) {
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) {
      this.reserve(8);
      while (value >= 0x80) {
        this.buf[this.len++] = (value % 0x80) | 0x80;
        value = Math.floor(value / 0x80);
      }
      this.buf[this.len++] = value;
      return this;
    }
    let big = BigInt(value);
    if (big < 0n || big > U64.max) throw new RangeError(`${value} does not fit a u64 varint`);
    this.reserve(10);
    while (big >= 0x80n) {
      this.buf[this.len++] = Number(big & 0x7fn) | 0x80;
      big >>= 7n;
    }
    this.buf[this.len++] = Number(big);
    return this;
  }

  /** A signed integer, zigzag-encoded, then as a varint. */
  zigzag(value) {
    const big = BigInt(value);
    return this.varint(big >= 0n ? big * 2n : -big * 2n - 1n);
  }

  f64(value) {
    this.reserve(8);
    this.buf.writeDoubleLE(value, this.len);
    this.len += 8;
    return this;
  }

  bytes(data) {
    this.varint(data.length);
    this.reserve(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
    return this;
  }

  string(text) {
    const size = Buffer.byteLength(text, 'utf8');
    this.varint(size);
    this.reserve(size);
    this.len += this.buf.write(text, this.len, size, 'utf8');
    return this;
  }

  /** A Uuid: its length byte 16, then its 16 bytes. */
  uuid(id) {
    if (id.length !== 16) throw new RangeError(`a request id has 16 bytes, not ${id.length}`);
    return this.bytes(id);
  }

  /** `None` for null or undefined, else `Some` and the value written by `write`. */
  option(value, write) {
    if (value === null || value === undefined) return this.u8(0);
    this.u8(1);
    write.call(this, value);
    return this;
  }

  vec(items, write) {
    this.varint(items.length);
    for (const item of items) write.call(this, item);
    return this;
  }

  /** The bytes written so far (a view, not a copy). */
  finish() {
    return this.buf.subarray(0, this.len);
  }
}

/** Reads postcard values from one message body, strictly. */
class Reader {
  constructor(buf) {
    this.buf = buf;
    this.pos = 0;
  }

  need(n, what) {
    if (this.pos + n > this.buf.length) {
      throw new MalformedFrame(`the body ends inside ${what}`);
    }
  }

  u8(what = 'a byte') {
    this.need(1, what);
    return this.buf[this.pos++];
  }

  bool() {
    const byte = this.u8('a bool');
    if (byte > 1) throw new MalformedFrame(`a bool is 0 or 1, not ${byte}`);
    return byte === 1;
  }

  /** A varint of the given width as a BigInt, rejecting overlong or overflowing ones. */
  varintOf(width, what) {
    let value = 0n;
    for (let i = 0; i < width.bytes; i++) {
      const byte = this.u8(what);
      value |= BigInt(byte & 0x7f) << BigInt(7 * i);
      if (byte < 0x80) {
        if (value > width.max) throw new MalformedFrame(`${what} ${value} overflows its type`);
        return value;
      }
    }
    throw new MalformedFrame(`${what} is longer than ${width.bytes} bytes`);
  }

  /** A varint known to fit a few bytes, decoded without BigInt (the hot path). */
  smallVarint(width, what) {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < width.bytes; i++) {
      const byte = this.u8(what);
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (value > Number(width.max)) throw new MalformedFrame(`${what} ${value} overflows its type`);
        return value;
      }
      scale *= 0x80;
    }
    throw new MalformedFrame(`${what} is longer than ${width.bytes} bytes`);
  }

  u16(what = 'a u16') {
    return this.smallVarint(U16, what);
  }

  u32(what = 'a u32') {
    return this.smallVarint(U32, what);
  }

  /** A u64 as a BigInt: it may exceed 2^53. */
  u64(what = 'a u64') {
    return this.varintOf(U64, what);
  }

  /** A length prefix, also checked against the bytes left. */
  length(what) {
    // Decoded without BigInt: a value too large for a double is past the end anyway.
    const len = this.smallVarint(U64, `the length of ${what}`);
    if (len > this.buf.length - this.pos) {
      throw new MalformedFrame(`${what} claims ${len} bytes, more than the body holds`);
    }
    return len;
  }

  /** Bytes, as a view into the body. */
  bytes(what = 'bytes') {
    const len = this.length(what);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  string(what = 'a string') {
    const data = this.bytes(what);
    try {
      return utf8.decode(data);
    } catch {
      throw new MalformedFrame(`${what} is not valid UTF-8`);
    }
  }

  uuid() {
    const data = this.bytes('a request id');
    if (data.length !== 16) throw new MalformedFrame(`a request id has 16 bytes, not ${data.length}`);
    return Buffer.from(data);
  }

  option(read) {
    const tag = this.u8('an Option tag');
    if (tag === 0) return null;
    if (tag === 1) return read.call(this);
    throw new MalformedFrame(`an Option tag is 0 or 1, not ${tag}`);
  }

  /** A Result as `{ ok }` or `{ err }`. */
  result(readOk, readErr) {
    const tag = this.u8('a Result tag');
    if (tag === 0) return { ok: readOk.call(this) };
    if (tag === 1) return { err: readErr.call(this) };
    throw new MalformedFrame(`a Result tag is 0 or 1, not ${tag}`);
  }

  vec(read) {
    const count = this.smallVarint(U64, 'the length of a Vec');
    // Each element takes at least one byte: a larger count is a lie.
    if (count > this.buf.length - this.pos) {
      throw new MalformedFrame(`a Vec claims ${count} elements, more than the body holds`);
    }
    const items = [];
    for (let i = 0; i < count; i++) items.push(read.call(this));
    return items;
  }

  f64() {
    this.need(8, 'an f64');
    const value = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return value;
  }

  /** Throws unless the whole body was read. */
  end(what) {
    if (this.pos !== this.buf.length) {
      throw new MalformedFrame(`${this.buf.length - this.pos} bytes left over after ${what}`);
    }
  }
}

module.exports = { Writer, Reader };
