// Building request bodies with the `netlink` package's formatters. Its nested formatters are
// typed Buffer but return stream data; flatten() makes them real Buffers. Pure.
import { AttrStream, type StreamData } from 'netlink';

export { putU32 as u32, putU16be as u16be, getU32 } from 'netlink';

/** Serialises the package's stream data (nested attributes, structs) to one Buffer. */
export function flatten(data: StreamData): Buffer {
  const out = new AttrStream();
  out.emit(data);
  return Buffer.concat(out.bufs);
}

/** Runs one of the package's message formatters and returns the body it wrote. */
export function body<M>(format: (msg: M, out: AttrStream) => void, msg: M): Uint8Array[] {
  const out = new AttrStream();
  format(msg, out);
  return out.bufs;
}
