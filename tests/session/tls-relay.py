#!/usr/bin/env python3
"""TLS front for an RSP server in the session tests: starts the server command given after "--", accepts
one TLS client (certificate, optional client-certificate check, or a PSK through `openssl s_server`), and
relays bytes both ways. Prints "Listening on port N" like gdbserver, so tests start it the same way."""
import argparse
import os
import re
import selectors
import socket
import ssl
import subprocess
import sys
import threading
import time


def start_upstream(cmd):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    while True:
        line = proc.stdout.readline().decode(errors="replace")
        if not line:
            sys.exit("relay: upstream server exited before listening")
        m = re.search(r"port (\d+)", line)
        if m:
            break  # not echoed: the test reads the relay's own "Listening on port" line
        sys.stderr.write("upstream: " + line)
    # Keep draining its output so the traced program never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, int(m.group(1))


def pump(a_read, a_write, b_sock):
    """Copies between (a_read, a_write) and b_sock until either side closes."""
    sel = selectors.DefaultSelector()
    sel.register(a_read, selectors.EVENT_READ, "a")
    sel.register(b_sock, selectors.EVENT_READ, "b")
    while True:
        for key, _ in sel.select():
            if key.data == "a":
                data = a_read.recv(65536) if hasattr(a_read, "recv") else os.read(a_read.fileno(), 65536)
                if not data:
                    return
                b_sock.sendall(data)
                # Bytes already decrypted inside the TLS object do not wake the selector.
                while hasattr(a_read, "pending") and a_read.pending():
                    b_sock.sendall(a_read.recv(a_read.pending()))
            else:
                data = b_sock.recv(65536)
                if not data:
                    return
                if hasattr(a_write, "sendall"):
                    a_write.sendall(data)
                else:
                    a_write.write(data)
                    a_write.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--client-ca", help="require a client certificate signed by this CA")
    ap.add_argument("--psk-hex")
    ap.add_argument("--psk-identity")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    proc, up_port = start_upstream(cmd)
    try:
        if args.psk_hex:
            run_psk(args, up_port)
        else:
            run_cert(args, up_port)
    finally:
        proc.kill()
        proc.wait()


def run_cert(args, up_port):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    print("Listening on port %d" % ls.getsockname()[1], flush=True)
    conn, _ = ls.accept()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(args.client_ca)
    try:
        tconn = ctx.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError) as e:
        print("relay: handshake failed: %s" % e, flush=True)
        return
    up = socket.create_connection(("127.0.0.1", up_port))
    pump(tconn, tconn, up)


def run_psk(args, up_port):
    # Python's ssl module has no PSK before 3.13: let openssl terminate TLS and relay its stdin/stdout.
    # s_server does not report a port it chose itself without also printing session details into the data
    # stream, so take a free port from the kernel and hand it over (the window in between is tiny).
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    srv = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-nocert", "-quiet",
                            "-naccept", "2", "-psk", args.psk_hex, "-psk_identity", args.psk_identity,
                            "-cipher", "PSK", "-tls1_2"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    # Wait until it accepts connections before announcing the port.
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.01)
    else:
        sys.exit("relay: openssl s_server did not start")
    print("Listening on port %d" % port, flush=True)
    up = socket.create_connection(("127.0.0.1", up_port))

    def from_upstream():
        while True:
            data = up.recv(65536)
            if not data:
                break
            srv.stdin.write(data)
            srv.stdin.flush()
        srv.kill()

    threading.Thread(target=from_upstream, daemon=True).start()
    while True:
        data = os.read(srv.stdout.fileno(), 65536)
        if not data:
            break
        up.sendall(data)
    srv.kill()


if __name__ == "__main__":
    main()
