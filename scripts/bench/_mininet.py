#!/usr/bin/python3
# Mininet's side of `npm run bench -- lab`: builds a shape with mininet's Python API inside the
# throwaway namespace it is started in — Linux bridges made with iproute2 (what `--switch lxbr`
# makes; brctl is not installed), no controller — and times build+start, the ping matrix (static
# ARP for every pair, as autoStaticArp does and the neighbour-table cap needs, then pingAll: like
# cnmkit's check, which programs its neighbours first) and stop; prints them as JSON on stdout, with
# the wall-clock time at which the network was up (the bench adds the process start from it).
# Mininet.init's fixLimits() would change host-wide sysctls: it is never called. Never `mn -c`.
# Usage: _mininet.py star 1 N | linear K N [--no-ping]  (star: N hosts on one bridge; linear: K
# bridges in a chain, N hosts on each)
import json
import sys
import time

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import Switch
from mininet.topo import LinearTopo, SingleSwitchTopo

Mininet.inited = True  # skip Mininet.init(): it runs fixLimits(), which raises host-wide limits


class IpBridge(Switch):
    """A Linux bridge, as mininet's LinuxBridge (lxbr), made with iproute2."""

    def start(self, _controllers):
        self.cmd('ip link add name', self, 'type bridge')
        for intf in self.intfList():
            if self.name in intf.name:
                self.cmd('ip link set dev', intf, 'master', self)
        self.cmd('ip link set dev', self, 'up')

    def stop(self, deleteIntfs=True):
        self.cmd('ip link del dev', self)
        super().stop(deleteIntfs)


def main():
    shape, k, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    setLogLevel('error')
    topo = SingleSwitchTopo(k=n) if shape == 'star' else LinearTopo(k=k, n=n)
    t0 = time.perf_counter()
    net = Mininet(topo=topo, switch=IpBridge, controller=None, waitConnected=False)
    net.start()
    t1 = time.perf_counter()
    up_epoch_ms = time.time() * 1000
    loss = None
    arp = t1
    if '--no-ping' not in sys.argv[4:]:
        net.staticArp()
        arp = time.perf_counter()
        loss = net.pingAll(timeout=1)
    t2 = time.perf_counter()
    net.stop()
    t3 = time.perf_counter()
    pairs = len(net.hosts) * (len(net.hosts) - 1)
    print(json.dumps({'upMs': (t1 - t0) * 1000, 'upEpochMs': up_epoch_ms, 'pingMs': (t2 - t1) * 1000, 'arpMs': (arp - t1) * 1000, 'downMs': (t3 - t2) * 1000, 'pairs': pairs, 'lossPct': loss}))


if __name__ == '__main__':
    main()
