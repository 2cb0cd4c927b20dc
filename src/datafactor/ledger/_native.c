/* Batch RFC 6962 hashing for `ledger verify` (wrapped by datafactor/ledger/batch.py).
 *
 * Verify re-hashes every entry and rebuilds every interior node: two SHA-256 calls per leaf. One
 * hashlib call per hash spends most of its time in the interpreter, not in SHA-256; here a whole
 * chunk is hashed in one call, with the GIL released, by OpenSSL's SHA-256 (the library hashlib
 * itself uses). The one-shot SHA256() and the EVP interface cost more per call than the
 * compression of one or two blocks (EVP fetches or resets its context each time), so this uses the
 * low-level SHA256_Init/Update/Final with a context on the stack: thread-safe and cheapest.
 * batch.py holds the Python versions of both functions; the tests compare them.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_API_COMPAT 10101 /* the low-level SHA-256 calls are deprecated in 3.0, not gone */
#include <Python.h>
#include <openssl/sha.h>
#include <string.h>

#define DIGEST 32

static void leaf_hash(const unsigned char *entry, size_t len, unsigned char *out)
{
    static const unsigned char prefix = 0x00;
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, &prefix, 1);
    SHA256_Update(&ctx, entry, len);
    SHA256_Final(out, &ctx);
}

static void node_hash(const unsigned char *left_right, unsigned char *out)
{
    unsigned char block[1 + 2 * DIGEST];
    SHA256_CTX ctx;
    block[0] = 0x01;
    memcpy(block + 1, left_right, 2 * DIGEST);
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, block, sizeof block);
    SHA256_Final(out, &ctx);
}

PyDoc_STRVAR(leaf_hashes_joined_doc,
"leaf_hashes_joined(data, sep, count) -> bytes | None\n\n"
"The leaf hashes SHA-256(0x00 || entry), concatenated, of the entries in `data` joined by the\n"
"byte `sep`; None unless `data` splits into exactly `count` entries (then no entry held `sep`,\n"
"and the split is the only one).");

static PyObject *leaf_hashes_joined(PyObject *module, PyObject *args)
{
    Py_buffer data;
    int sep;
    Py_ssize_t count;
    if (!PyArg_ParseTuple(args, "y*in", &data, &sep, &count))
        return NULL;
    if (sep < 0 || sep > 255 || count < 1) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "sep must be a byte and count positive");
        return NULL;
    }
    if (count - 1 > data.len) { /* fewer bytes than separators: cannot split into count */
        PyBuffer_Release(&data);
        Py_RETURN_NONE;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, count * DIGEST);
    if (out == NULL) {
        PyBuffer_Release(&data);
        return NULL;
    }
    unsigned char *digests = (unsigned char *)PyBytes_AS_STRING(out);
    const unsigned char *at = data.buf, *end = at + data.len;
    Py_ssize_t found = 0;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        const unsigned char *cut = memchr(at, sep, (size_t)(end - at));
        if (found == count) { /* more pieces than entries: some entry holds the separator */
            found = -1;
            break;
        }
        leaf_hash(at, (size_t)((cut != NULL ? cut : end) - at), digests + DIGEST * found);
        found++;
        if (cut == NULL)
            break;
        at = cut + 1;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    if (found != count) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    return out;
}

PyDoc_STRVAR(subtree_levels_doc,
"subtree_levels(hashes) -> list[bytes]\n\n"
"Every level of the perfect subtrees over the concatenated 32-byte leaf hashes: [hashes,\n"
"level 1, ...], each level's nodes SHA-256(0x01 || left || right) concatenated, an odd last\n"
"node left unpaired, up to a single node.");

static PyObject *subtree_levels(PyObject *module, PyObject *arg)
{
    Py_buffer leaves;
    if (PyObject_GetBuffer(arg, &leaves, PyBUF_SIMPLE) < 0)
        return NULL;
    if (leaves.len % DIGEST != 0 || leaves.len == 0) {
        PyBuffer_Release(&leaves);
        PyErr_SetString(PyExc_ValueError, "hashes must be a positive multiple of 32 bytes");
        return NULL;
    }
    Py_ssize_t n = leaves.len / DIGEST;
    PyObject *level = PyBytes_FromStringAndSize(leaves.buf, leaves.len);
    PyBuffer_Release(&leaves);
    PyObject *levels = PyList_New(0);
    if (level == NULL || levels == NULL || PyList_Append(levels, level) < 0)
        goto fail;
    while (n > 1) {
        Py_ssize_t half = n / 2;
        PyObject *up = PyBytes_FromStringAndSize(NULL, half * DIGEST);
        if (up == NULL)
            goto fail;
        const unsigned char *below = (const unsigned char *)PyBytes_AS_STRING(level);
        unsigned char *above = (unsigned char *)PyBytes_AS_STRING(up);
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < half; i++)
            node_hash(below + 2 * DIGEST * i, above + DIGEST * i);
        Py_END_ALLOW_THREADS
        Py_DECREF(level);
        level = up;
        if (PyList_Append(levels, level) < 0)
            goto fail;
        n = half;
    }
    Py_DECREF(level);
    return levels;
fail:
    Py_XDECREF(level);
    Py_XDECREF(levels);
    return NULL;
}

static PyMethodDef methods[] = {
    {"leaf_hashes_joined", leaf_hashes_joined, METH_VARARGS, leaf_hashes_joined_doc},
    {"subtree_levels", subtree_levels, METH_O, subtree_levels_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "datafactor.ledger._native",
    "RFC 6962 leaf and node hashing in batches (OpenSSL SHA-256).", -1, methods,
};

PyMODINIT_FUNC PyInit__native(void)
{
    return PyModule_Create(&module);
}
