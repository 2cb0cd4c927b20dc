/* Batch RFC 6962 hashing for `ledger verify` (wrapped by datafactor/ledger/batch.py).
 *
 * Verify re-hashes every entry and rebuilds every interior node: two SHA-256 calls per leaf. One
 * hashlib call per hash spends most of its time in the interpreter, not in SHA-256; here a whole
 * chunk is hashed in one call, with the GIL released, by OpenSSL's SHA-256 (the library hashlib
 * itself uses). The one-shot SHA256() and the EVP interface cost more per call than the
 * compression of one or two blocks (EVP fetches or resets its context each time), so this uses the
 * low-level SHA256_Init/Update/Final with a context on the stack: thread-safe and cheapest.
 * batch.py holds the Python versions of both functions; the tests compare them.
 *
 * SqliteReader reads a SQLite store's chunks itself, through its own read-only connection: the
 * sqlite3 module's row tuples (or an aggregate that joins a chunk into one value) cost more per
 * entry than SQLite's own step and the hashing together. It only answers "this range is exactly
 * what was logged" (every row present, every value a BLOB, every leaf hash its entry's, every
 * node 32 bytes) or None; fsck.py then reads the range through SQL and names what is wrong.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE /* dlopen's RTLD_NOLOAD */
#define OPENSSL_API_COMPAT 10101 /* the low-level SHA-256 calls are deprecated in 3.0, not gone */
#include <Python.h>
#include <openssl/sha.h>
#include <dlfcn.h>
#include <sqlite3.h>
#include <string.h>
#include <unistd.h>

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


/* ------------------------------------------------------------------------------ SqliteReader */

typedef struct {
    PyObject_HEAD
    sqlite3 *db;
    sqlite3_stmt *entries; /* idx, entry, leaf_hash of [?1, ?2) in index order */
    sqlite3_stmt *nodes;   /* idx, hash of level ?1, [?2, ?3) in index order */
    int busy;              /* a call is running with the GIL released */
    pid_t pid;             /* the process that opened it: a connection does not survive fork */
} Reader;

static int reader_fail(Reader *self, const char *what)
{
    PyErr_Format(PyExc_RuntimeError, "%s: %s", what,
                 self->db != NULL ? sqlite3_errmsg(self->db) : "out of memory");
    return -1;
}

static void reader_close_db(Reader *self)
{
    sqlite3_finalize(self->entries);
    sqlite3_finalize(self->nodes);
    sqlite3_close(self->db);
    self->entries = self->nodes = NULL;
    self->db = NULL;
}

static int reader_init(Reader *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"path", NULL};
    PyObject *path_obj;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&", keywords, PyUnicode_FSConverter, &path_obj))
        return -1;
    if (self->db != NULL) {
        Py_DECREF(path_obj);
        PyErr_SetString(PyExc_RuntimeError, "the reader is already open");
        return -1;
    }
    self->pid = getpid();
    int rc = sqlite3_open_v2(PyBytes_AS_STRING(path_obj), &self->db,
                             SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    Py_DECREF(path_obj);
    if (rc != SQLITE_OK)
        return reader_fail(self, "cannot open the ledger database");
    sqlite3_busy_timeout(self->db, 30000);
    if (sqlite3_prepare_v2(self->db,
                           "SELECT idx, entry, leaf_hash FROM ledger_entry "
                           "WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
                           -1, &self->entries, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(self->db,
                           "SELECT idx, hash FROM ledger_node "
                           "WHERE level = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx",
                           -1, &self->nodes, NULL) != SQLITE_OK)
        return reader_fail(self, "cannot read the ledger tables");
    return 0;
}

static void reader_dealloc(Reader *self)
{
    reader_close_db(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Claims the reader for one call (the GIL is released while it steps); -1 with an exception if
   it is closed, another thread is using it, or this is not the process that opened it. */
static int reader_claim(Reader *self)
{
    if (self->db == NULL) {
        PyErr_SetString(PyExc_ValueError, "the reader is closed");
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the reader is in use by another thread");
        return -1;
    }
    if (self->pid != getpid()) {
        PyErr_SetString(PyExc_RuntimeError, "the reader was opened by another process");
        return -1;
    }
    self->busy = 1;
    return 0;
}

/* Steps `stmt` over rows idx = first, first + 1, ... and writes each row's 32-byte digest: for
   entries the leaf hash of column 1, checked against column 2; for nodes column 1. Returns 1 if
   exactly `n` consecutive rows came, every value a BLOB and every check held; 0 if not; -1 on a
   database error (the statement's error is then in the handle). Called without the GIL. */
static int step_rows(sqlite3_stmt *stmt, int is_entries, sqlite3_int64 first, Py_ssize_t n,
                     unsigned char *out)
{
    Py_ssize_t k = 0;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (k == n || sqlite3_column_type(stmt, 0) != SQLITE_INTEGER ||
            sqlite3_column_int64(stmt, 0) != first + k)
            return 0;
        if (sqlite3_column_type(stmt, 1) != SQLITE_BLOB)
            return 0;
        const unsigned char *value = sqlite3_column_blob(stmt, 1);
        int len = sqlite3_column_bytes(stmt, 1);
        unsigned char *digest = out + DIGEST * k;
        if (is_entries) {
            if (sqlite3_column_type(stmt, 2) != SQLITE_BLOB || sqlite3_column_bytes(stmt, 2) != DIGEST)
                return 0;
            leaf_hash(value != NULL ? value : (const unsigned char *)"", (size_t)len, digest);
            if (memcmp(digest, sqlite3_column_blob(stmt, 2), DIGEST) != 0)
                return 0;
        } else {
            if (len != DIGEST)
                return 0;
            memcpy(digest, value, DIGEST);
        }
        k++;
    }
    if (rc != SQLITE_DONE)
        return -1;
    return k == n;
}

static PyObject *reader_run(Reader *self, sqlite3_stmt *stmt, int is_entries, sqlite3_int64 first,
                            Py_ssize_t n)
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * DIGEST);
    if (out == NULL) {
        self->busy = 0;
        return NULL;
    }
    int result;
    Py_BEGIN_ALLOW_THREADS
    result = step_rows(stmt, is_entries, first, n, (unsigned char *)PyBytes_AS_STRING(out));
    sqlite3_reset(stmt);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (result < 0) {
        Py_DECREF(out);
        reader_fail(self, "cannot read the ledger");
        return NULL;
    }
    if (result == 0) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    return out;
}

PyDoc_STRVAR(reader_leaf_hashes_doc,
"leaf_hashes(start, stop) -> bytes | None\n\n"
"The leaf hashes of entries [start, stop), concatenated, if every row is present, entry and leaf\n"
"hash are BLOBs and every stored leaf hash is SHA-256(0x00 || entry); otherwise None.");

static PyObject *reader_leaf_hashes(Reader *self, PyObject *args)
{
    long long start, stop;
    if (!PyArg_ParseTuple(args, "LL", &start, &stop))
        return NULL;
    if (start < 0 || stop <= start || stop - start > (1 << 24)) {
        PyErr_SetString(PyExc_ValueError, "need 0 <= start < stop, at most 2**24 entries");
        return NULL;
    }
    if (reader_claim(self) < 0)
        return NULL;
    sqlite3_bind_int64(self->entries, 1, start);
    sqlite3_bind_int64(self->entries, 2, stop);
    return reader_run(self, self->entries, 1, start, (Py_ssize_t)(stop - start));
}

PyDoc_STRVAR(reader_nodes_doc,
"nodes(level, first, stop) -> bytes | None\n\n"
"The stored nodes [first, stop) of `level`, concatenated, if every one is present and a 32-byte\n"
"BLOB; otherwise None.");

static PyObject *reader_nodes(Reader *self, PyObject *args)
{
    int level;
    long long first, stop;
    if (!PyArg_ParseTuple(args, "iLL", &level, &first, &stop))
        return NULL;
    if (first < 0 || stop <= first || stop - first > (1 << 24)) {
        PyErr_SetString(PyExc_ValueError, "need 0 <= first < stop, at most 2**24 nodes");
        return NULL;
    }
    if (reader_claim(self) < 0)
        return NULL;
    sqlite3_bind_int(self->nodes, 1, level);
    sqlite3_bind_int64(self->nodes, 2, first);
    sqlite3_bind_int64(self->nodes, 3, stop);
    return reader_run(self, self->nodes, 0, first, (Py_ssize_t)(stop - first));
}

static PyObject *reader_close(Reader *self, PyObject *unused)
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the reader is in use by another thread");
        return NULL;
    }
    reader_close_db(self);
    Py_RETURN_NONE;
}

static PyMethodDef reader_methods[] = {
    {"leaf_hashes", (PyCFunction)reader_leaf_hashes, METH_VARARGS, reader_leaf_hashes_doc},
    {"nodes", (PyCFunction)reader_nodes, METH_VARARGS, reader_nodes_doc},
    {"close", (PyCFunction)reader_close, METH_NOARGS, "Close the connection."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "datafactor.ledger._native.SqliteReader",
    .tp_doc = "SqliteReader(path): checks a SQLite ledger's chunks through its own read-only "
              "connection.",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)reader_init,
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_methods = reader_methods,
};

/* ------------------------------------------------------------------------------------ module */

PyDoc_STRVAR(same_sqlite_doc,
"same_sqlite(module_path) -> bool\n\n"
"Whether the extension module at `module_path` (the sqlite3 module's _sqlite3) uses the very\n"
"SQLite library this module links. Two copies of SQLite in one process do not share their\n"
"POSIX lock bookkeeping: closing one copy's connection would drop the other's locks on the file.");

static PyObject *same_sqlite(PyObject *module, PyObject *arg)
{
    PyObject *path_obj;
    if (!PyUnicode_FSConverter(arg, &path_obj))
        return NULL;
    void *handle = dlopen(PyBytes_AS_STRING(path_obj), RTLD_LAZY | RTLD_NOLOAD);
    Py_DECREF(path_obj);
    int same = 0;
    if (handle != NULL) {
        void *theirs = dlsym(handle, "sqlite3_open_v2");
        same = theirs != NULL && theirs == (void *)&sqlite3_open_v2;
        dlclose(handle);
    }
    return PyBool_FromLong(same);
}

static PyMethodDef methods[] = {
    {"leaf_hashes_joined", leaf_hashes_joined, METH_VARARGS, leaf_hashes_joined_doc},
    {"subtree_levels", subtree_levels, METH_O, subtree_levels_doc},
    {"same_sqlite", same_sqlite, METH_O, same_sqlite_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "datafactor.ledger._native",
    "RFC 6962 leaf and node hashing in batches (OpenSSL SHA-256); SQLite chunk reads.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__native(void)
{
    if (PyType_Ready(&ReaderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ReaderType);
    if (PyModule_AddObject(m, "SqliteReader", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(&ReaderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
