// TypeScript twins of the plugin-spec JSON Schemas, written by hand next to them: one interface
// per schema definition, and per subsystem a table of calls naming each call's definitions.
// test/unit/plugin-spec.test.ts proves that every interface has exactly its schema's keys
// (required and optional alike) and that the call tables agree with the schemas.

/** A call without arguments: the engine sends 0 bytes, read as {}. */
export type EmptyRequest = Record<string, unknown>;
/** Success with nothing to say; sent as {}. */
export type EmptyReply = Record<string, never>;

/** A failed call (HTTP 500). NetworkDriver errors carry Err; IpamDriver errors carry both. */
export interface ErrorReply {
  Err?: string;
  Error?: string;
}

// ---- Plugin ----

export type Subsystem = 'NetworkDriver' | 'IpamDriver';

export interface ActivateReply {
  Implements: string[];
}

// ---- NetworkDriver ----

export type Scope = 'local' | 'global';

export interface NetworkCapabilities {
  Scope: Scope;
  ConnectivityScope?: Scope;
  /** Engines from 28: GwAllocCheck is called only when this is true. */
  GwAllocChecker?: boolean;
}

/** One pool of a network as IPAM gave it; Gateway and AuxAddresses are CIDRs with the pool's length. */
export interface IPAMData {
  AddressSpace?: string;
  Pool?: string;
  Gateway?: string;
  AuxAddresses?: Record<string, string> | null;
}

/** CreateNetwork's Options; keys other than these may arrive too. */
export interface NetworkOptions {
  /** The `-o k=v` map (always sent by 20.10, maybe {}). */
  'com.docker.network.generic'?: Record<string, unknown> | null;
  'com.docker.network.enable_ipv6'?: boolean;
  'com.docker.network.enable_ipv4'?: boolean;
  'com.docker.network.internal'?: boolean;
  [key: string]: unknown;
}

/** One published port; Proto is the IP protocol number (6 tcp, 17 udp, 132 sctp). */
export interface PortBinding {
  Proto?: number;
  IP?: string;
  Port?: number;
  HostIP?: string;
  HostPort?: number;
  HostPortEnd?: number;
}

export interface TransportPort {
  Proto?: number;
  Port?: number;
}

/** Options of CreateEndpoint, Join and ProgramExternalConnectivity; other keys may arrive too. */
export interface EndpointOptions {
  'com.docker.network.portmap'?: PortBinding[] | null;
  'com.docker.network.endpoint.exposedports'?: TransportPort[] | null;
  /** Base64 of the MAC address's bytes. */
  'com.docker.network.endpoint.macaddress'?: string;
  [key: string]: unknown;
}

export interface CreateNetworkRequest {
  NetworkID: string;
  Options?: NetworkOptions | null;
  IPv4Data?: IPAMData[] | null;
  IPv6Data?: IPAMData[] | null;
}

/** DeleteNetwork and FreeNetwork. */
export interface NetworkRequest {
  NetworkID: string;
}

/** Addresses as CIDRs, the MAC as aa:bb:…; "" when unset. */
export interface EndpointInterface {
  Address?: string;
  AddressIPv6?: string;
  MacAddress?: string;
}

export interface CreateEndpointRequest {
  NetworkID: string;
  EndpointID: string;
  Interface?: EndpointInterface | null;
  Options?: EndpointOptions | null;
}

export interface CreateEndpointReply {
  /** null, or only the fields the request left empty. */
  Interface?: EndpointInterface | null;
}

/** EndpointOperInfo, DeleteEndpoint, Leave and RevokeExternalConnectivity. */
export interface EndpointRequest {
  NetworkID: string;
  EndpointID: string;
}

export interface EndpointOperInfoReply {
  Value: Record<string, unknown>;
}

export interface JoinRequest {
  NetworkID: string;
  EndpointID: string;
  SandboxKey?: string;
  Options?: EndpointOptions | null;
}

export interface InterfaceName {
  /** A link in the driver's own network namespace; ≤ 15 characters. */
  SrcName: string;
  DstPrefix?: string;
  DstName?: string;
}

export interface StaticRoute {
  Destination: string;
  /** 0: via NextHop; 1: connected. */
  RouteType: 0 | 1;
  NextHop?: string;
}

export interface JoinReply {
  InterfaceName?: InterfaceName;
  /** A plain address, on-link. */
  Gateway?: string;
  GatewayIPv6?: string;
  StaticRoutes?: StaticRoute[] | null;
  DisableGatewayService?: boolean;
}

export interface ProgramExternalConnectivityRequest {
  NetworkID: string;
  EndpointID: string;
  Options?: EndpointOptions | null;
}

export interface DiscoveryRequest {
  DiscoveryType: number;
  DiscoveryData?: unknown;
}

export interface AllocateNetworkRequest {
  NetworkID: string;
  Options?: Record<string, string> | null;
  IPv4Data?: IPAMData[] | null;
  IPv6Data?: IPAMData[] | null;
}

export interface AllocateNetworkReply {
  Options?: Record<string, string> | null;
}

// ---- IpamDriver ----

export interface IpamCapabilities {
  RequiresMACAddress: boolean;
  RequiresRequestReplay: boolean;
}

export interface AddressSpaces {
  LocalDefaultAddressSpace: string;
  GlobalDefaultAddressSpace: string;
}

export interface RequestPoolRequest {
  AddressSpace?: string;
  /** --subnet, or "" for any free pool. */
  Pool?: string;
  /** --ip-range, or "". */
  SubPool?: string;
  Options?: Record<string, string> | null;
  V6?: boolean;
}

export interface RequestPoolReply {
  PoolID: string;
  Pool: string;
  Data?: Record<string, string> | null;
}

export interface ReleasePoolRequest {
  PoolID: string;
}

export interface AddressOptions {
  /** "com.docker.network.gateway" for the network's gateway. */
  RequestAddressType?: string;
  'com.docker.network.endpoint.macaddress'?: string;
  [key: string]: string | undefined;
}

export interface RequestAddressRequest {
  PoolID: string;
  /** A plain address, or "" for the next free one. */
  Address?: string;
  Options?: AddressOptions | null;
}

export interface RequestAddressReply {
  /** With the pool's prefix length. */
  Address: string;
  Data?: Record<string, string> | null;
}

export interface ReleaseAddressRequest {
  PoolID: string;
  Address: string;
}

// ---- Definitions and calls, per schema file ----

export interface PluginDefinitions {
  EmptyRequest: EmptyRequest;
  ActivateReply: ActivateReply;
  ErrorReply: ErrorReply;
}

export interface NetworkDriverDefinitions {
  EmptyRequest: EmptyRequest;
  EmptyReply: EmptyReply;
  ErrorReply: ErrorReply;
  NetworkCapabilities: NetworkCapabilities;
  IPAMData: IPAMData;
  NetworkOptions: NetworkOptions;
  PortBinding: PortBinding;
  TransportPort: TransportPort;
  EndpointOptions: EndpointOptions;
  CreateNetworkRequest: CreateNetworkRequest;
  NetworkRequest: NetworkRequest;
  EndpointInterface: EndpointInterface;
  CreateEndpointRequest: CreateEndpointRequest;
  CreateEndpointReply: CreateEndpointReply;
  EndpointRequest: EndpointRequest;
  EndpointOperInfoReply: EndpointOperInfoReply;
  JoinRequest: JoinRequest;
  InterfaceName: InterfaceName;
  StaticRoute: StaticRoute;
  JoinReply: JoinReply;
  ProgramExternalConnectivityRequest: ProgramExternalConnectivityRequest;
  DiscoveryRequest: DiscoveryRequest;
  AllocateNetworkRequest: AllocateNetworkRequest;
  AllocateNetworkReply: AllocateNetworkReply;
}

export interface IpamDriverDefinitions {
  EmptyRequest: EmptyRequest;
  EmptyReply: EmptyReply;
  ErrorReply: ErrorReply;
  IpamCapabilities: IpamCapabilities;
  AddressSpaces: AddressSpaces;
  RequestPoolRequest: RequestPoolRequest;
  RequestPoolReply: RequestPoolReply;
  ReleasePoolRequest: ReleasePoolRequest;
  AddressOptions: AddressOptions;
  RequestAddressRequest: RequestAddressRequest;
  RequestAddressReply: RequestAddressReply;
  ReleaseAddressRequest: ReleaseAddressRequest;
}

/** Each call's [request, reply] definition names, as the schema's root properties give them. */
export interface PluginCallNames {
  Activate: ['EmptyRequest', 'ActivateReply'];
}

export interface NetworkDriverCallNames {
  GetCapabilities: ['EmptyRequest', 'NetworkCapabilities'];
  CreateNetwork: ['CreateNetworkRequest', 'EmptyReply'];
  DeleteNetwork: ['NetworkRequest', 'EmptyReply'];
  CreateEndpoint: ['CreateEndpointRequest', 'CreateEndpointReply'];
  EndpointOperInfo: ['EndpointRequest', 'EndpointOperInfoReply'];
  DeleteEndpoint: ['EndpointRequest', 'EmptyReply'];
  Join: ['JoinRequest', 'JoinReply'];
  Leave: ['EndpointRequest', 'EmptyReply'];
  ProgramExternalConnectivity: ['ProgramExternalConnectivityRequest', 'EmptyReply'];
  RevokeExternalConnectivity: ['EndpointRequest', 'EmptyReply'];
  DiscoverNew: ['DiscoveryRequest', 'EmptyReply'];
  DiscoverDelete: ['DiscoveryRequest', 'EmptyReply'];
  AllocateNetwork: ['AllocateNetworkRequest', 'AllocateNetworkReply'];
  FreeNetwork: ['NetworkRequest', 'EmptyReply'];
}

export interface IpamDriverCallNames {
  GetCapabilities: ['EmptyRequest', 'IpamCapabilities'];
  GetDefaultAddressSpaces: ['EmptyRequest', 'AddressSpaces'];
  RequestPool: ['RequestPoolRequest', 'RequestPoolReply'];
  ReleasePool: ['ReleasePoolRequest', 'EmptyReply'];
  RequestAddress: ['RequestAddressRequest', 'RequestAddressReply'];
  ReleaseAddress: ['ReleaseAddressRequest', 'EmptyReply'];
}

type CallTable<Names extends { [K in keyof Names]: [string, string] }, Defs> = {
  [K in keyof Names]: {
    request: Names[K][0] extends keyof Defs ? Defs[Names[K][0]] : never;
    reply: Names[K][1] extends keyof Defs ? Defs[Names[K][1]] : never;
  };
};

export type PluginCalls = CallTable<PluginCallNames, PluginDefinitions>;
export type NetworkDriverCalls = CallTable<NetworkDriverCallNames, NetworkDriverDefinitions>;
export type IpamDriverCalls = CallTable<IpamDriverCallNames, IpamDriverDefinitions>;
