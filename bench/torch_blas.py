"""Which BLAS PyTorch runs its products in, as loaded: torch's build configuration names the
library it was built against, but Debian's libtorch links the generic libblas.so.3, which
resolves (through the alternatives) to whatever BLAS is installed: the reference libblas3
(slow, single-threaded) or OpenBLAS (libopenblas0-pthread). After one product this prints
"blas <file> <kind>" for the BLAS library mapped into the process (realpath), kind one of
openblas, mkl, reference, other."""
import os
import torch

torch.mm(torch.randn(64, 64), torch.randn(64, 64))
found = []
with open("/proc/self/maps") as f:
    for line in f:
        path = line.split()[-1] if len(line.split()) >= 6 else ""
        base = os.path.basename(path).lower()
        if ("blas" in base or "mkl_" in base or "lapack" in base) and ".so" in base:
            real = os.path.realpath(path)
            if real not in found:
                found.append(real)
def kind(p):
    p = p.lower()
    if "openblas" in p:
        return "openblas"
    if "mkl" in p:
        return "mkl"
    if "libblas" in p or "/blas/" in p:
        return "reference"
    return "other"
blas = [p for p in found if "lapack" not in os.path.basename(p).lower()] or found
if blas:
    print("blas %s %s" % (blas[0], kind(blas[0])))
else:
    print("blas (none-mapped) %s" % ("mkldnn" if torch.backends.mkldnn.is_available() else "other"))
