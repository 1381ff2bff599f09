"""Shared by the integration tests: certificates made with the openssl CLI
(ECDSA P-256, two days), the way an operator would make them."""
import os
import subprocess


def openssl(*args, cwd, data=None):
    """Runs openssl with args in cwd (stdin: data); its stdout, or raises
    with its stderr."""
    r = subprocess.run(["openssl", *args], cwd=cwd, input=data, capture_output=True,
                       timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {r.stderr.decode(errors='replace')}")
    return r.stdout


def make_ca(d, name, cn):
    """A self-signed CA: d/name.pem and d/name.key."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={cn}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def make_cert(d, name, ca, cn, ext, serial):
    """A certificate for CN=cn signed by ca, with the extensions text ext:
    d/name.pem and d/name.key."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(ext)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-set_serial", serial, "-days", "2", "-extfile", f"{name}.ext",
            "-out", f"{name}.pem", cwd=d)
