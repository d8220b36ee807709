// The typed kernel layer of cnmkit: a netlink handle per network namespace and the operations
// on links, addresses, routes, neighbours, FDB entries and events. Re-exports only.
export { NetlinkHandle, NetlinkHandlePool, type HandleOptions } from './handle.js';
export type { Link, LinkKind, LinkCommon, VethLink, BridgeLink, VxlanLink, MacvlanLink, OtherLink, MacvlanMode, OperState } from './types.js';
export {
  addVeth, addBridge, addVxlan, addMacvlan, addVlan, setLink, setLinkUp, setLinkDown, setMaster, moveLink,
  findLink, getLink, peekLink, linkIndex, listLinks, deleteLink, deleteLinksByGroup,
  type LinkOptions, type VethSpec, type BridgeSpec, type VxlanSpec, type MacvlanSpec, type VlanSpec, type LinkChanges,
} from './links.js';
export { addAddress, deleteAddress, listAddresses, type Address, type AddressScope, type AddAddressOptions } from './addrs.js';
export { addRoute, deleteRoute, listRoutes, RT_TABLE_MAIN, type Route, type RouteSpec } from './routes.js';
export { addNeighbor, deleteNeighbor, listNeighbors, setNeighSolicit, type Neighbor, type NeighborSpec } from './neigh.js';
export { addFdb, appendFdb, replaceFdb, deleteFdb, listFdb, type FdbEntry, type FdbSpec } from './fdb.js';
export { encodeNeighWrite, type NeighWrite } from './neigh-batch.js';
export { subscribe, Subscription, type NetlinkEvent, type SubscribeOptions, type ResyncReason } from './events.js';
export { parseIp, parseCidr, parseMac, formatIp, formatMac, type Family, type Cidr, type IpAddress } from '../ip/index.js';
export { listNetnsIds, netnsIdOf, netnsIdReferenced } from './nsid.js';
export { MTU_MIN, MTU_MAX, type LinkRef } from './validate.js';
export { setBridgePort, type BridgePortSpec } from './bridge-port.js';
