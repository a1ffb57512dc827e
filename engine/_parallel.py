"""One lock for entering numba ``parallel=True`` kernels.

numba's default (workqueue) threading layer aborts the process when two threads enter parallel
code at once (numba/numba#8563). Every parallel kernel is entered under :data:`PARALLEL_LOCK`;
small jobs run the serial kernels in the calling thread (nogil) and need no lock.
"""

import threading

PARALLEL_LOCK = threading.Lock()
