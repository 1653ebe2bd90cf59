// ICE guest SDK for AssemblyScript: the ice:agent@0.1.0 world as plain functions.
//
//   import { log, kv, clock, random, events, http, model, Result, Status, IceError } from "ice";
//
// Every import returns a Result<T, IceError> or a Status: a policy refusal (denied / limit /
// invalid / failed) is a value the guest can handle, never an exception. See ../README.md.
export { ErrorKind, IceError, Result, Status } from "./result";
export { Level, log } from "./log";
export { clock } from "./clock";
export { random } from "./random";
export { kv } from "./kv";
export { events } from "./events";
export { http } from "./http";
export { model } from "./model";
import "./abort";
