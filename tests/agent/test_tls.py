"""TLS on rsprof-agent: certificates made here with openssl (deploy/make-tls.sh's CA, board and host
certificates, and a second unrelated CA); a client with a CA-signed certificate is served, one without a
certificate or with the other CA's is refused in the handshake; PSK with the right and a wrong key."""
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from agenttest import Agent, Rsp, check, fail, frame, require_ptrace

D = tempfile.mkdtemp(prefix="rsprof-agent-tls.")


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, cwd=D)
    if r.returncode != 0:
        fail("openssl %s: %s" % (" ".join(args), r.stderr))


def make_ca(name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".pem", "-days", "2", "-subj", "/CN=" + name)


def make_cert(name, ca):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".pem", "-days", "2")


def p(name):
    return os.path.join(D, name)


CIPHERS = []  # the suite each successful try_client negotiated


def try_client(port, cert=None, ciphers=None):
    """Connects with TLS 1.2, sends qSupported, returns the reply or None when refused."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(p("ca.pem"))
    ctx.check_hostname = False
    if ciphers:
        ctx.set_ciphers(ciphers)
    if cert:
        ctx.load_cert_chain(p(cert + ".pem"), p(cert + ".key"))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s = ctx.wrap_socket(raw)
        CIPHERS.append(s.cipher()[0])
        s.sendall(frame("qSupported"))
        data = b""
        while b"#" not in data or data.index(b"#") + 3 > len(data):
            chunk = s.recv(4096)
            if not chunk:
                return None
            data += chunk
        s.close()
        return data
    except (ssl.SSLError, ConnectionError, OSError) as e:
        print("   refused: %s" % e)
        return None
    finally:
        raw.close()


ECDHE_PSK = "ECDHE-PSK-CHACHA20-POLY1305:ECDHE-PSK-AES128-CBC-SHA256:ECDHE-PSK-AES256-CBC-SHA384"


def psk_client(port, key, identity="board-1", ciphers=ECDHE_PSK):
    proc = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1_2",
                             "-psk", key, "-psk_identity", identity, "-cipher", ciphers, "-quiet"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(frame("qSupported"))
    proc.stdin.flush()
    out = b""
    deadline = time.time() + 10
    while time.time() < deadline and b"PacketSize" not in out:
        r, _, _ = select.select([proc.stdout], [], [], 0.5)
        if r:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    return out


def make_certs():
    if not shutil.which("openssl"):
        print("SKIP: openssl is not installed")
        sys.exit(77)
    # The deployment script makes the CA, the board (server) and host (client) certificates.
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "make-tls.sh")
    r = subprocess.run([script, D, "test-board", "test-host"], capture_output=True, text=True)
    if r.returncode != 0:
        fail("make-tls.sh failed: " + r.stderr)


def tls_rsp(port, cert="host"):
    """An Rsp client over TLS 1.2 with the host certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(p("ca.pem"))
    ctx.check_hostname = False
    ctx.load_cert_chain(p(cert + ".pem"), p(cert + ".key"))
    rsp = Rsp.__new__(Rsp)
    rsp.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=60))
    rsp.buf = b""
    rsp.ack = True
    return rsp


def flow():
    """The slow-client test of test_hardening.py over TLS: plaintext that the server has no room for
    waits inside the TLS layer, and the reading stops as with plain TCP."""
    require_ptrace()
    make_certs()
    from test_hardening import stall_and_drain
    agent = Agent(["--tls-cert", p("board.pem"), "--tls-key", p("board.key"), "--tls-ca", p("ca.pem"),
                   "--", os.environ["FX_QUIET"], "1000000"])
    stall_and_drain(agent, tls_rsp(agent.port))
    shutil.rmtree(D, ignore_errors=True)


def idle():
    """A peer that never starts the TLS handshake, and one that completes it but sends no packet, are
    closed after --idle-timeout; the launched program lives on and a real client is served."""
    require_ptrace()
    make_certs()
    from test_hardening import wait_closed
    agent = Agent(["--idle-timeout", "1", "--tls-cert", p("board.pem"), "--tls-key", p("board.key"),
                   "--tls-ca", p("ca.pem"), "--", os.environ["FX_GDB"]])
    raw = socket.create_connection(("127.0.0.1", agent.port), timeout=10)
    wait_closed(raw, "a peer that never starts the handshake")
    raw.close()
    print("ok: a peer that never starts the handshake is disconnected")
    silent = tls_rsp(agent.port)
    wait_closed(silent.sock, "a TLS peer that sends no packet")
    silent.close()
    print("ok: a peer that completes the handshake but sends no packet is disconnected")
    check(agent.proc.poll() is None, "neither ended the session")
    for _ in range(100):  # the agent may still be closing the previous connection
        try:
            rsp = tls_rsp(agent.port)
            r = rsp.cmd("?")
            break
        except (ConnectionError, EOFError, ssl.SSLError):
            time.sleep(0.05)
    else:
        fail("no TLS client was served after the idle peers")
    check(r.startswith(b"T05"), "a TLS client is served and finds the program stopped at its start")
    rsp.send("k")
    agent.wait()
    shutil.rmtree(D, ignore_errors=True)


def main():
    make_certs()
    # ...and an unrelated CA issues a certificate the agent must not accept.
    make_ca("otherca")
    make_cert("stranger", "otherca")
    agent = Agent(["--multi", "--tls-cert", p("board.pem"), "--tls-key", p("board.key"),
                   "--tls-ca", p("ca.pem")])
    r = try_client(agent.port, "host")
    check(r is not None and b"PacketSize" in r, "a client with a certificate from the CA is served")
    check(try_client(agent.port) is None, "a client without a certificate is refused")
    check(try_client(agent.port, "stranger") is None, "a client with another CA's certificate is refused")
    r = try_client(agent.port, "host")
    check(r is not None and b"PacketSize" in r, "the agent still serves good clients afterwards")
    check(all("GCM" in c or "CHACHA20" in c for c in CIPHERS), "with an AEAD suite (%s)" % CIPHERS)
    check(try_client(agent.port, "host", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA") is None,
          "a client offering only CBC-SHA1 suites is refused")
    agent.kill()
    check("CN=stranger" in agent.stderr, "the refusal names the presented certificate (CN=stranger)")
    check("no client certificate" in agent.stderr, "and says when none was presented")

    # A certificate without --tls-ca authenticates no client: as loud as no TLS, unless meant.
    cert = ["--tls-cert", p("board.pem"), "--tls-key", p("board.key")]
    loud = "without client authentication"
    for extra, warned, what in (([], True, "a certificate without --tls-ca warns"),
                                (["--tls-no-client-auth"], False, "--tls-no-client-auth silences it"),
                                (["--tls-ca", p("ca.pem")], False, "with --tls-ca there is no warning")):
        a = Agent(["--listen", "0.0.0.0:0", "--multi"] + cert + extra)
        a.kill()
        check((loud in a.stderr and "***" in a.stderr) == warned, what)
    r = subprocess.run([os.environ["AGENT"], "--listen", "127.0.0.1:0", "--multi", "--tls-no-client-auth",
                        "--tls-ca", p("ca.pem")] + cert, capture_output=True, text=True, timeout=20)
    check(r.returncode == 2, "--tls-no-client-auth with --tls-ca is a usage error")

    key = "00112233445566778899aabbccddeeff"
    with open(p("psk"), "w") as f:
        f.write(key + "\n")
    agent = Agent(["--multi", "--tls-psk-file", p("psk"), "--tls-psk-identity", "board-1"])
    check(b"PacketSize" in psk_client(agent.port, key), "PSK with the right key is served")
    check(b"PacketSize" not in psk_client(agent.port, "ffeeddccbbaa99887766554433221100"),
          "PSK with a wrong key is refused")
    check(b"PacketSize" not in psk_client(agent.port, key, "someone-else"), "PSK with another identity is refused")
    check(b"PacketSize" in psk_client(agent.port, key), "and the right key still works afterwards")
    check(b"PacketSize" not in psk_client(agent.port, key, ciphers="PSK-AES128-GCM-SHA256:PSK-CHACHA20-POLY1305"),
          "plain PSK suites (no forward secrecy) are refused")
    agent.kill()
    check("someone-else" in agent.stderr, "the refusal names the unknown PSK identity")
    check(agent.stderr.count("'board-1'") >= 1, "and the identity whose key did not match")
    shutil.rmtree(D, ignore_errors=True)


if __name__ == "__main__":
    {"main": main, "flow": flow, "idle": idle}[sys.argv[1] if len(sys.argv) > 1 else "main"]()
