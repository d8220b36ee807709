// Kernel error replies (NLMSG_ERROR) read from their raw bytes, extended ACK text included, for
// KernelError. The `netlink` package itself only says "Request rejected: CODE".
import util from 'node:util';
import { getS32, getU16, getU32 } from 'netlink';

/** Flags of an NLMSG_ERROR message (NLM_F_CAPPED, NLM_F_ACK_TLVS). */
const NLM_F_CAPPED = 0x100;
const NLM_F_ACK_TLVS = 0x200;
/** Attributes of the extended ACK. */
const NLMSGERR_ATTR_MSG = 1;
const NLMSGERR_ATTR_OFFS = 2;
const NLMSG_HDRLEN = 16;

export interface ErrorReply {
  /** Positive errno; 0 for a plain ACK. */
  errno: number;
  /** EEXIST, EINVAL, … (or the number as text when unknown). */
  code: string;
  /** The kernel's own words (NLMSGERR_ATTR_MSG), when it gave any. */
  extack?: string;
  /** Byte offset of the offending attribute in the request (NLMSGERR_ATTR_OFFS). */
  offset?: number;
}

const align4 = (n: number): number => (n + 3) & ~3;

export function errnoName(errno: number): string {
  try {
    return util.getSystemErrorName(-Math.abs(errno));
  } catch {
    return String(errno);
  }
}

/** Parses the payload of an NLMSG_ERROR message (s32 error, the request's header, …, TLVs). */
export function parseErrorReply(data: Buffer, flags: number): ErrorReply {
  if (data.length < 4) throw new Error(`NLMSG_ERROR payload too short (${data.length} bytes)`);
  const errno = Math.abs(getS32(data.subarray(0, 4)));
  const reply: ErrorReply = { errno, code: errno === 0 ? 'OK' : errnoName(errno) };
  if (!(flags & NLM_F_ACK_TLVS) || data.length < 4 + NLMSG_HDRLEN) return reply;
  const requestLen = getU32(data.subarray(4, 8));
  let off = 4 + (flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(requestLen));
  while (off + 4 <= data.length) {
    const len = getU16(data.subarray(off, off + 2));
    const type = getU16(data.subarray(off + 2, off + 4)) & 0x3fff;
    if (len < 4 || off + len > data.length) break;
    const value = data.subarray(off + 4, off + len);
    if (type === NLMSGERR_ATTR_MSG) {
      const nul = value.indexOf(0);
      reply.extack = value.subarray(0, nul < 0 ? value.length : nul).toString('utf8');
    } else if (type === NLMSGERR_ATTR_OFFS && value.length >= 4) {
      reply.offset = getU32(value.subarray(0, 4));
    }
    off += align4(len);
  }
  return reply;
}
