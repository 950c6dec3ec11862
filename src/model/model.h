/* The model object (internal view shared by src/model/model.c and src/model/checkpoint.c)
 * and the cfg -> graph builder's state, shared by the layer builders of src/model/model.c
 * and src/model/model_conv.c. */
#ifndef NERVE_NN_MODEL_H
#define NERVE_NN_MODEL_H

#include "nerve.h"
#include "../io/cfg.h"

/* Shared by the layer builders of model.c and model_conv.c. */
#define MAX_WEIGHTS (1 << 27) /* elements of one weight tensor: larger is surely a typo */
#define BN_MOMENTUM 0.1f
#define BN_EPS 1e-5f

/* Returns a negative status from expr to the caller. */
#define TRY(expr)                       \
    do {                                \
        int try_st_ = (expr);           \
        if (try_st_ < 0)                \
            return try_st_;             \
    } while (0)

/* Declares `has` as the result of a cfg getter (1 present, 0 absent), returning on error. */
#define GET(has, expr)  \
    int has = (expr);   \
    if (has < 0)        \
        return has

struct nerve_model {
    nerve_graph *g;
    nerve_net_config cfg;
    char *text;          /* the cfg text the model was built from (checkpoints keep it) */
    char base_dir[512];  /* directory relative data paths were resolved against */
    char file[256];      /* the cfg's file name, for errors found at compile */
    int input, labels, output, loss;
    int mean, std;       /* z-score states ("input.mean", "input.std") or -1 */
    nerve_layer_info *layers;
    int *layer_out;      /* output node of each layer ([route] / [shortcut] read them) */
    int n_layers, cap_layers;
    int no_init;         /* built by model_from_cfg_ex without initialising the weights */
    nerve_vocab vocab;   /* a text model's vocabulary (n = 0: none) */
    int seq_override;    /* > 0: seq= replaced (model_build_opts.seq) */
    nerve_head_info head; /* the task of the head and the target it needs */
    char **names;        /* class names (nerve_model_set_names; checkpoints keep them) */
    int n_names;
    nerve_yolo1_config yolo1; /* a [detection] head's settings (has_yolo1) */
    int has_yolo1;
    nerve_yolo_config yolo[8]; /* [yolo] / [region] heads, in cfg order */
    int yolo_in[8], yolo_out[8], yolo_anchors[8]; /* their input, output and anchors nodes */
    int n_yolo, yolo_line;
    nerve_ssd_config ssd;       /* [ssd] heads: the loss's settings (the first head's) */
    nerve_ssd_head ssd_head[8]; /* their default boxes, in cfg order */
    int ssd_pred[8];            /* each head's predictions [N, H*W*boxes, 5 + classes] */
    float ssd_scale[2];         /* min_scale, max_scale */
    int n_ssd, ssd_line, ssd_out, ssd_priors; /* the joined predictions, the default boxes */
    nerve_frcnn_config frcnn; /* Faster R-CNN ([rpn] ... [fast_rcnn]): has_frcnn 1 after [rpn],
                               * 2 after [fast_rcnn] */
    int has_frcnn, frcnn_rpn_in, frcnn_anchors, frcnn_rois, frcnn_labels, frcnn_scores;
    int frcnn_per_roi; /* a [roi_pool] / [roi_align] came: [connected] runs per RoI */
    int head_loss; /* the head's loss node when it has no penalties added, else -1 */
    char refuse_train[320];  /* non-empty: why nerve_fit refuses this model (file:line: ...) */
    char refuse_detect[320]; /* non-empty: why the YOLO decoder refuses it */
};

/* How a cfg is built, beyond its text (model_from_cfg_opts). */
typedef struct model_build_opts {
    int init_weights;           /* 0: every weight stays zero (inspection only) */
    const nerve_vocab *vocab;   /* the vocabulary (a checkpoint's) instead of train_text's */
    int seq;                    /* > 0: this many token inputs instead of the cfg's seq= (one
                                   step at a time for sampling) */
} model_build_opts;
nerve_model *model_from_cfg_opts(const char *text, const char *filename, const char *base_dir,
                                 const model_build_opts *o);
/* The directory relative data paths were resolved against, made absolute (checkpoints and
 * exported ONNX files keep it as metadata "nerve.cfg_dir"). */
void model_absolute_base_dir(const nerve_model *m, char *out, size_t size);
/* nerve_export_onnx into a buffer the caller frees with nerve_xfree (src/model/onnx_export.c). */
int model_export_onnx_buffer(nerve_model *m, unsigned char **buf, size_t *len);
/* Sets the class names from metadata "nerve.names" (a JSON array of strings). */
int model_names_from_json(nerve_model *m, const char *text);
/* NERVE_OK, or an error saying that f is an int8 checkpoint, which nothing trains from. */
int model_refuse_quantized(const nerve_st_file *f);
/* nerve_model_load with seq > 0 replacing the cfg's seq= (src/model/checkpoint.c). */
nerve_model *model_load_seq(const char *path, int seq);

/* Builds a model from cfg text; relative data paths are resolved against base_dir
 * (NULL: the directory of `filename`). */
nerve_model *model_from_cfg(const char *text, const char *filename, const char *base_dir);
/* init_weights == 0 leaves every weight at zero: inspecting a large architecture (shapes,
 * parameter counts, MACs) then costs its allocation only (tests use it). */
nerve_model *model_from_cfg_ex(const char *text, const char *filename, const char *base_dir,
                               int init_weights);

/* ---- the layer builders' state and helpers (src/model/model.c) ------------------------- */

typedef struct build_ctx {
    nerve_model *m;
    nerve_graph *g;
    const cfg_doc *d;
    const cfg_section *s;
    char name[48];  /* the layer's name: name= or "<section><index>" */
    int x;          /* the layer's input node; builders leave their output here */
    double flops;   /* builders set the forward FLOPs per sample */
    int is_head;    /* set by [softmax] / [cost] */
    int cost_after_head; /* a [cost] followed the [softmax] head (darknet's resnet101.cfg) */
    nerve_rng rng;  /* initialisers, seeded from [net] seed */
    int no_init;    /* get_init() gives zeros (model_from_cfg_ex) */
} build_ctx;

/* A graph builder failed: keep its message, prefixed with "file:line: [section] name: ". */
int graph_fail(build_ctx *b, int st);
/* Elements of one sample of node (its shape without the batch dimension). */
size_t sample_numel(nerve_graph *g, int node);
/* activation= (default linear) and init= (default He for the ReLU family, else Glorot). */
int get_activation(build_ctx *b, nerve_act *act);
int get_init(build_ctx *b, nerve_act act, nerve_init *init);

/* Sets the model's output, labels and loss and its head's task (model.c). */
int model_finish_head(build_ctx *b, int pred, int labels, int loss, nerve_task task,
                      nerve_target_kind target, const char *loss_name, int logits);

/* ---- detection heads (src/model/model_detect.c) ---------------------------------------- */

extern const char *const detection_keys[];
int build_detection(build_ctx *b);
extern const char *const yolo_keys[], *const region_keys[];
int build_yolo(build_ctx *b);
int build_region(build_ctx *b);
/* the loss and head of a model with [yolo] / [region] layers, after its last layer */
int finish_yolo(build_ctx *b);
/* [ssd] (src/model/model_ssd.c) and the loss of a model with them, after its last layer */
extern const char *const ssd_keys[];
int build_ssd(build_ctx *b);
int finish_ssd(build_ctx *b);
/* Runs one input x (one sample of the model's input shape) in evaluation mode at batch 1
 * (compiling the model when it is not) and returns decode's detections of it
 * (src/train/yolo_detect.c; nerve_yolo_detect, nerve_ssd_detect). */
typedef int (*model_decode_fn)(nerve_model *m, int sample, float width, float height,
                               float thresh, float nms_iou, nerve_detection *out, int max_out);
int model_detect_one(nerve_model *m, const float *x, model_decode_fn decode, float width,
                     float height, float thresh, float nms_iou, nerve_detection *out, int max_out);

/* ---- Faster R-CNN (src/model/model_rcnn.c) ------------------------------------------- */

extern const char *const rpn_keys[], *const roi_pool_keys[], *const roi_align_keys[],
    *const fast_rcnn_keys[];
int build_rpn(build_ctx *b);
int build_roi_pool(build_ctx *b);
int build_roi_align(build_ctx *b);
int build_fast_rcnn(build_ctx *b);
/* key = index names an earlier layer (relative when negative): *layer, or an error naming the
 * line (src/model/model_conv.c) */
int resolve_layer(build_ctx *b, const char *key, int index, int *layer);

/* ---- darknet's [rnn] and [gru] (src/model/model_rnn_darknet.c) ------------------------ */

/* time_steps= of [net] (1 when absent or below 2) */
int darknet_time_steps(const build_ctx *b);
/* darknet's layer rather than nerve's cell: [net] gives time_steps=, or the input is one
 * vector per sample */
int darknet_recurrent_applies(const build_ctx *b);
int build_darknet_recurrent(build_ctx *b, int gru);
/* the connected sub-layers' names in darknet's .weights order */
extern const char *const darknet_rnn_roles[], *const darknet_gru_roles[];

/* ---- darknet's class trees (src/model/darknet_tree.c) ----------------------------------- */

#define DARKNET_TREE_MAX (1 << 20) /* classes of one tree */
typedef struct darknet_tree {
    int n;          /* classes (lines) */
    int *parent;    /* [n]: an earlier line, or -1 */
    int groups;     /* runs of consecutive lines with one parent: the softmax groups */
    int *group_offset, *group_size;
} darknet_tree;
/* Parses darknet's tree text (path names it in errors); t is empty on error. */
int darknet_tree_parse(const char *text, size_t len, const char *path, darknet_tree *t);
int darknet_tree_load(const char *path, darknet_tree *t);
void darknet_tree_free(darknet_tree *t);
/* A data file named by a cfg key (tree=, map=): absolute, else relative to the cfg's folder,
 * else to darknet's installed folder (/usr/share/darknet, where darknet's cfgs say
 * data/...). out gets the path that exists, or an error names the cfg line. */
int darknet_data_path(build_ctx *b, const cfg_entry *e, char *out, size_t cap);
/* tree= read through darknet_data_path; its classes must be `classes` */
int darknet_tree_of(build_ctx *b, const cfg_entry *e, int classes, darknet_tree *t);
/* map= (one tree class number a line) read and checked */
int darknet_map_check(build_ctx *b, const cfg_entry *e, int classes);
/* a softmax over each group of x [N, classes] */
int darknet_tree_softmax(build_ctx *b, int x, const darknet_tree *t, int *y);

/* ---- convolutional layers (src/model/model_conv.c; see docs/cfg.md) -------------------- */

extern const char *const convolutional_keys[], *const deconvolutional_keys[],
    *const maxpool_keys[], *const avgpool_keys[], *const local_keys[],
    *const normalization_keys[], *const route_keys[], *const shortcut_keys[],
    *const upsample_keys[], *const unpool_keys[], *const reorg_keys[], *const crop_keys[];
int build_crop(build_ctx *b);
int build_convolutional(build_ctx *b);
int build_deconvolutional(build_ctx *b);
int build_maxpool(build_ctx *b);
int build_avgpool(build_ctx *b);
int build_local(build_ctx *b);
int build_normalization(build_ctx *b);
int build_route(build_ctx *b);
int build_shortcut(build_ctx *b);
int build_upsample(build_ctx *b);
int build_unpool(build_ctx *b);
int build_reorg(build_ctx *b);

/* Forward multiply-accumulates per sample of the nodes first_node.. of g (one layer's):
 * the products of dense, conv, conv_transpose, local and rnn nodes, and one per element of
 * batch norm (its inference form is one multiply-add per element). */
double model_layer_macs(const nerve_graph *g, int first_node);

/* ---- operators by name (src/model/by_name.c) ------------------------------------------- */
/* The cfg builder adds its activations, element-wise and shape nodes through the operator
 * table (nerve_op_build), as a model importer does. Each returns the node or a negative
 * status; the node is the one the direct function (nerve_activation, ...) adds. */
int by_name_act(nerve_graph *g, int x, nerve_act act);
int by_name_dropout(nerve_graph *g, int x, float p, int spatial);
int by_name_binary(nerve_graph *g, const char *op, int a, int b); /* "add", "sub", ... */
int by_name_reshape(nerve_graph *g, int x, int ndim, const int *dims);
int by_name_transpose(nerve_graph *g, int x, int ndim, const int *perm);
int by_name_slice(nerve_graph *g, int x, int axis, int start, int end);
int by_name_flatten(nerve_graph *g, int x);
int by_name_concat(nerve_graph *g, int n, const int *xs, int axis);
int by_name_upsample(nerve_graph *g, int x, int scale, const char *mode);
int by_name_block(nerve_graph *g, const char *op, int x, int block); /* depth_to_space, ... */
int by_name_zscore(nerve_graph *g, int x, int mean, int std);

#endif
