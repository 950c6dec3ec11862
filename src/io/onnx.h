/* ONNX model files: a reader of the protobuf wire format for the parts of onnx.proto
 * (IR version 3 and later) that a float32 importer needs, and nothing of graphs.
 *
 * Read: ModelProto (ir_version 1, graph 7, opset_import 8), GraphProto (node 1, name 2,
 * initializer 5, input 11, output 12, value_info 13), NodeProto (input 1, output 2, name 3,
 * op_type 4, attribute 5, domain 7), AttributeProto (name 1, f 2, i 3, s 4, t 5, floats 7,
 * ints 8, strings 9, type 20), TensorProto (dims 1, data_type 2, float_data 4, int32_data 5,
 * int64_data 7, name 8, raw_data 9, double_data 10, uint64_data 11, data_location 14) and
 * ValueInfoProto / TypeProto.Tensor / TensorShapeProto. Every other field is skipped by its
 * wire type. Subgraph attributes (If, Loop, Scan bodies) are recorded by type only, never
 * parsed, so nothing recurses. Every length is checked against what remains of its
 * enclosing message before it is used; counts are bounded (ONNX_MAX_* below).
 *
 * Tensors are decoded at read time: element types float, double and float16 into `f`
 * (float32), the integer and bool types into `i` (int64). Strings, complex numbers,
 * external data and segments are refused when the tensor is used, not when it is read
 * (`dtype` says which). Internal to libnerve. */
#ifndef NERVE_IO_ONNX_H
#define NERVE_IO_ONNX_H

#include <stddef.h>
#include <stdint.h>

#define ONNX_MAX_RANK 8
#define ONNX_MAX_NAME 256
#define ONNX_MAX_NODES 100000
#define ONNX_MAX_ATTR_VALUES 4096

/* Field numbers of onnx.proto, shared by the reader and the writer. */
enum { ONNX_WIRE_VARINT = 0, ONNX_WIRE_FIXED64 = 1, ONNX_WIRE_LEN = 2, ONNX_WIRE_FIXED32 = 5 };
enum { /* ModelProto */
    ONNX_MODEL_IR_VERSION = 1, ONNX_MODEL_PRODUCER_NAME = 2, ONNX_MODEL_PRODUCER_VERSION = 3,
    ONNX_MODEL_DOC_STRING = 6, ONNX_MODEL_GRAPH = 7, ONNX_MODEL_OPSET_IMPORT = 8,
    ONNX_MODEL_METADATA_PROPS = 14
};
enum { ONNX_OPSET_DOMAIN = 1, ONNX_OPSET_VERSION = 2 };          /* OperatorSetIdProto */
enum { ONNX_ENTRY_KEY = 1, ONNX_ENTRY_VALUE = 2 };               /* StringStringEntryProto */
enum { /* GraphProto */
    ONNX_GRAPH_NODE = 1, ONNX_GRAPH_NAME = 2, ONNX_GRAPH_INITIALIZER = 5, ONNX_GRAPH_INPUT = 11,
    ONNX_GRAPH_OUTPUT = 12, ONNX_GRAPH_VALUE_INFO = 13, ONNX_GRAPH_SPARSE_INITIALIZER = 15
};
enum { /* NodeProto */
    ONNX_NODE_INPUT = 1, ONNX_NODE_OUTPUT = 2, ONNX_NODE_NAME = 3, ONNX_NODE_OP_TYPE = 4,
    ONNX_NODE_ATTRIBUTE = 5, ONNX_NODE_DOMAIN = 7
};
enum { /* AttributeProto */
    ONNX_ATTRF_NAME = 1, ONNX_ATTRF_F = 2, ONNX_ATTRF_I = 3, ONNX_ATTRF_S = 4, ONNX_ATTRF_T = 5,
    ONNX_ATTRF_FLOATS = 7, ONNX_ATTRF_INTS = 8, ONNX_ATTRF_STRINGS = 9, ONNX_ATTRF_TYPE = 20
};
enum { /* TensorProto */
    ONNX_TENSOR_DIMS = 1, ONNX_TENSOR_DATA_TYPE = 2, ONNX_TENSOR_SEGMENT = 3,
    ONNX_TENSOR_FLOAT_DATA = 4, ONNX_TENSOR_INT32_DATA = 5, ONNX_TENSOR_STRING_DATA = 6,
    ONNX_TENSOR_INT64_DATA = 7, ONNX_TENSOR_NAME = 8, ONNX_TENSOR_RAW_DATA = 9,
    ONNX_TENSOR_DOUBLE_DATA = 10, ONNX_TENSOR_UINT64_DATA = 11, ONNX_TENSOR_EXTERNAL_DATA = 13,
    ONNX_TENSOR_DATA_LOCATION = 14
};
enum { ONNX_VALUE_INFO_NAME = 1, ONNX_VALUE_INFO_TYPE = 2 };     /* ValueInfoProto */
enum { ONNX_TYPE_TENSOR = 1 };                                   /* TypeProto.tensor_type */
enum { ONNX_TYPE_TENSOR_ELEM_TYPE = 1, ONNX_TYPE_TENSOR_SHAPE = 2 }; /* TypeProto.Tensor */
enum { ONNX_SHAPE_DIM = 1 };                                     /* TensorShapeProto */
enum { ONNX_DIM_VALUE = 1, ONNX_DIM_PARAM = 2 };                 /* TensorShapeProto.Dimension */

/* TensorProto.DataType */
enum {
    ONNX_UNDEFINED = 0, ONNX_FLOAT = 1, ONNX_UINT8 = 2, ONNX_INT8 = 3, ONNX_UINT16 = 4,
    ONNX_INT16 = 5, ONNX_INT32 = 6, ONNX_INT64 = 7, ONNX_STRING = 8, ONNX_BOOL = 9,
    ONNX_FLOAT16 = 10, ONNX_DOUBLE = 11, ONNX_UINT32 = 12, ONNX_UINT64 = 13,
    ONNX_COMPLEX64 = 14, ONNX_COMPLEX128 = 15, ONNX_BFLOAT16 = 16
};

/* AttributeProto.AttributeType */
enum {
    ONNX_ATTR_UNDEFINED = 0, ONNX_ATTR_FLOAT = 1, ONNX_ATTR_INT = 2, ONNX_ATTR_STRING = 3,
    ONNX_ATTR_TENSOR = 4, ONNX_ATTR_GRAPH = 5, ONNX_ATTR_FLOATS = 6, ONNX_ATTR_INTS = 7,
    ONNX_ATTR_STRINGS = 8, ONNX_ATTR_TENSORS = 9, ONNX_ATTR_GRAPHS = 10,
    ONNX_ATTR_SPARSE_TENSOR = 11, ONNX_ATTR_SPARSE_TENSORS = 12, ONNX_ATTR_TYPE_PROTOS = 13,
    ONNX_ATTR_TYPE_PROTO = 14
};

typedef struct onnx_tensor {
    char name[ONNX_MAX_NAME];
    int dtype;          /* ONNX_* element type */
    int ndim;
    int64_t dims[ONNX_MAX_RANK];
    size_t n;           /* product of dims (checked) */
    float *f;           /* n floats for the float types, else NULL */
    int64_t *i;         /* n integers for the integer and bool types, else NULL */
    int unusable;       /* 1: external data, segments, strings or a type not decoded */
} onnx_tensor;

typedef struct onnx_attr {
    char name[ONNX_MAX_NAME];
    int type;           /* ONNX_ATTR_*; 0 when the file did not say (inferred from the fields) */
    float f;
    int64_t i;
    char *s;            /* NUL-terminated copy (the bytes of a STRING attribute) */
    size_t s_len;
    onnx_tensor *t;     /* TENSOR */
    int n_floats, n_ints, n_strings;
    float *floats;
    int64_t *ints;
} onnx_attr;

typedef struct onnx_node {
    char name[ONNX_MAX_NAME];
    char op_type[64];
    char domain[64];
    int n_in, n_out, n_attr;
    char **in;          /* names; "" for an omitted optional input */
    char **out;
    onnx_attr *attr;
} onnx_node;

typedef struct onnx_value_info {
    char name[ONNX_MAX_NAME];
    int is_tensor;      /* 0: a sequence, map or optional type */
    int dtype;
    int has_shape;
    int ndim;
    int64_t dims[ONNX_MAX_RANK]; /* -1 for a symbolic or missing dimension */
} onnx_value_info;

#define ONNX_MAX_METADATA 256

typedef struct onnx_model {
    int64_t ir_version;
    int64_t opset;      /* version of the default ("" or "ai.onnx") domain; 0 if absent */
    char graph_name[ONNX_MAX_NAME];
    int n_meta;         /* metadata_props: n_meta key/value pairs (NUL-terminated copies) */
    char **meta_key, **meta_value;
    int n_nodes, n_init, n_inputs, n_outputs, n_value_info;
    onnx_node *nodes;
    onnx_tensor *init;
    onnx_value_info *inputs, *outputs, *value_info;
} onnx_model;

/* Parses a serialised ModelProto. Returns NULL with an error message (via nerve_set_error,
 * NERVE_ERR_FORMAT, naming `source` and the byte offset) on malformed input. */
onnx_model *onnx_model_parse(const void *buf, size_t len, const char *source);
void onnx_model_free(onnx_model *m);

/* Parses a serialised TensorProto (the .pb files of ONNX test data) into *t. Returns
 * NERVE_OK or NERVE_ERR_FORMAT/NOMEM with a message. Free with onnx_tensor_clear(). */
int onnx_tensor_parse(const void *buf, size_t len, const char *source, onnx_tensor *t);
void onnx_tensor_clear(onnx_tensor *t);
/* Serialises a float or int64 tensor as a TensorProto (raw_data) into a buffer the caller
 * frees with nerve_xfree. Returns NULL on error. */
unsigned char *onnx_tensor_write(const onnx_tensor *t, size_t *len);

/* Serialises m as a ModelProto: ir_version, producer, one opset import (the default domain
 * at m->opset), metadata_props, and the graph (graph_name, nodes with their attributes by
 * type, initializers as raw little-endian float or int64 data, inputs and outputs as
 * tensor types of their dtype, a dimension below 0 written as the symbolic "N"). The caller
 * frees the buffer with nerve_xfree. Returns NULL with an error on a tensor without data or
 * a size beyond what a protobuf holds (2 GiB). */
unsigned char *onnx_model_write(const onnx_model *m, const char *producer, size_t *len);
/* Value of metadata key `key`, or NULL. */
const char *onnx_model_meta(const onnx_model *m, const char *key);

/* Name of an element type ("float", "int64", ...). */
const char *onnx_dtype_name(int dtype);

#endif
