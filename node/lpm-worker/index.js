'use strict';
// lpm-worker: write lpm workers in Node. See node/README.md.

const { Worker } = require('./lib/worker');
const { Context } = require('./lib/context');
const { STREAM_CHUNK, STREAM_WINDOW } = require('./lib/streams');
const { PROTOCOL_VERSION } = require('./lib/messages');
const { DEFAULT_MAX_FRAME_LEN } = require('./lib/frames');
const errors = require('./lib/errors');

module.exports = {
  Worker,
  Context,
  PROTOCOL_VERSION,
  STREAM_CHUNK,
  STREAM_WINDOW,
  DEFAULT_MAX_FRAME_LEN,
  ...errors,
};
