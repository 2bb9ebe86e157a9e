/* tests/models/test_models.c — the composer networks (models/composer.c), their configuration
 * and its JSON (models/config.c), and checkpoints (models/checkpoint.c): parameter names and
 * shapes, PyTorch golden values (tests/models/gen_golden_models.py writes
 * models/fixtures/ *.npz), the loss against a hand-built computation, gradients, learning a
 * pattern, JSON round trips and every refusal. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/layers.h"
#include "engine/npy.h"
#include "engine/optim.h"
#include "engine/rnn.h"
#include "engine/safetensors.h"
#include "engine/version.h"
#include "model_helpers.h"
#include "models/composer.h"
#include "testutil.h"

static void assert_has(const char *msg, const char *want) {
    ck_assert_msg(strstr(msg, want) != NULL, "message \"%s\" lacks \"%s\"", msg, want);
}

static const char *tmp_path(char *buf, size_t cap, const char *stem) {
    if (mkdir("tmp", 0777) != 0) ck_assert_int_eq(errno, EEXIST);
    snprintf(buf, cap, "tmp/%s_%ld.safetensors", stem, (long)getpid());
    return buf;
}

static cc_config tiny_tokens(cc_cell cell, int64_t vocab, int64_t embed, int64_t hidden, int layers) {
    cc_config c = cc_config_default(CC_ENC_TOKENS);
    c.vocab = vocab;
    c.embed = embed;
    c.hidden = hidden;
    c.layers = layers;
    c.cell = cell;
    c.dropout = 0.0f;
    return c;
}

static cc_config tiny_roll(cc_cell cell, int64_t hidden, int layers) {
    cc_config c = cc_config_default(CC_ENC_PIANOROLL);
    c.hidden = hidden;
    c.layers = layers;
    c.cell = cell;
    c.dropout = 0.0f;
    return c;
}

static float *host_f32(const ct_tensor *t) {
    int64_t n = ct_numel(t);
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    ck_assert_int_eq(ct_copy_to_host(t, v, sizeof(float) * (size_t)n), CT_OK);
    return v;
}

/* ===== configuration ======================================================================== */
/* Field by field: memcmp would read the struct's padding, which no assignment defines. */
static bool cfg_eq(const cc_config *a, const cc_config *b) {
    return a->version == b->version && a->encoding == b->encoding && a->vocab == b->vocab &&
           a->min_pitch == b->min_pitch && a->max_pitch == b->max_pitch &&
           a->steps_per_quarter == b->steps_per_quarter &&
           !memcmp(&a->steps_per_second, &b->steps_per_second, sizeof a->steps_per_second) &&
           a->max_shift_steps == b->max_shift_steps && a->num_velocity_bins == b->num_velocity_bins &&
           a->sample_rate == b->sample_rate && a->cell == b->cell && a->layers == b->layers &&
           a->hidden == b->hidden && a->embed == b->embed &&
           !memcmp(&a->dropout, &b->dropout, sizeof a->dropout);   /* bits: NaN cases too */
}

START_TEST(test_config_defaults) {
    const int64_t vocab[CC_ENC_COUNT] = {0, 38, 388, 88, 256};
    for (int e = 0; e < CC_ENC_COUNT; e++) {
        cc_config c = cc_config_default((cc_encoding)e);
        char err[256] = "";
        ct_status s = cc_config_resolve(&c, err, sizeof err);
        if (e == CC_ENC_TOKENS) {
            ck_assert_int_eq(s, CT_E_ARG);
            assert_has(err, "vocab 0");
            continue;
        }
        ck_assert_msg(s == CT_OK, "%s: %s", cc_encoding_name((cc_encoding)e), err);
        ck_assert_int_eq(c.vocab, vocab[e]);
        ck_assert_int_eq(c.version, CC_CONFIG_VERSION);
        ck_assert_int_eq(cc_encoding_from_name(cc_encoding_name((cc_encoding)e)), e);
    }
    ck_assert_int_eq(cc_encoding_from_name("midi"), -1);
    ck_assert_int_eq(cc_cell_from_name("GRU"), CC_GRU);
    ck_assert_int_eq(cc_cell_from_name("lstm"), CC_LSTM);
    ck_assert_int_eq(cc_cell_from_name("tcn"), -1);
    ck_assert_str_eq(cc_cell_label(CC_RNN), "RNN");
    ck_assert_str_eq(cc_encoding_name((cc_encoding)99), "?");
    /* vocab 0 is derived; a wrong one is refused; fields that do not apply are cleared */
    cc_config m = cc_config_default(CC_ENC_MELODY);
    m.vocab = 0;
    m.min_pitch = 21;
    m.max_pitch = 109;
    m.sample_rate = 44100;
    m.num_velocity_bins = 3;
    ck_assert_int_eq(cc_config_resolve(&m, NULL, 0), CT_OK);
    ck_assert_int_eq(m.vocab, 90);
    ck_assert_int_eq(m.sample_rate, 0);
    ck_assert_int_eq(m.num_velocity_bins, 0);
    cc_config p = cc_config_default(CC_ENC_PERFORMANCE);
    p.num_velocity_bins = 0;
    char err[256];
    ck_assert_int_eq(cc_config_resolve(&p, err, sizeof err), CT_E_ARG);
    assert_has(err, "vocab 388, but the encoding's settings give 356 classes");
    p.vocab = 0;
    ck_assert_int_eq(cc_config_resolve(&p, NULL, 0), CT_OK);
    ck_assert_int_eq(p.vocab, 356);
    ck_assert_int_eq(cc_config_vocab(&p), 356);
}
END_TEST

typedef struct bad_case { void (*edit)(cc_config *); cc_encoding enc; const char *want; } bad_case;
static void e_layers(cc_config *c) { c->layers = 0; }
static void e_hidden(cc_config *c) { c->hidden = 70000; }
static void e_embed(cc_config *c) { c->embed = 0; }
static void e_dropout(cc_config *c) { c->dropout = 1.0f; }
static void e_dropout_nan(cc_config *c) { c->dropout = NAN; }
static void e_cell(cc_config *c) { c->cell = (cc_cell)7; }
static void e_pitch(cc_config *c) { c->min_pitch = 60; c->max_pitch = 60; c->vocab = 0; }
static void e_spq(cc_config *c) { c->steps_per_quarter = 0; }
static void e_sps(cc_config *c) { c->steps_per_second = 100.5; c->vocab = 0; }
static void e_shift(cc_config *c) { c->max_shift_steps = 0; c->vocab = 0; }
static void e_roll_grid(cc_config *c) { c->steps_per_second = 100; }
static void e_roll_embed(cc_config *c) { c->embed = 16; }
static void e_roll_vocab(cc_config *c) { c->vocab = 128; }
static void e_rate(cc_config *c) { c->sample_rate = 0; }
static void e_version(cc_config *c) { c->version = 2; }
static void e_encoding(cc_config *c) { c->encoding = (cc_encoding)9; }

START_TEST(test_config_errors) {
    const bad_case cases[] = {
        {e_layers, CC_ENC_MELODY, "layers 0: expected 1..64"},
        {e_hidden, CC_ENC_MELODY, "hidden 70000: expected 1..65536"},
        {e_embed, CC_ENC_MELODY, "embed 0: expected 1..65536"},
        {e_dropout, CC_ENC_MELODY, "dropout 1: expected [0, 1)"},
        {e_dropout_nan, CC_ENC_MELODY, "dropout nan"},
        {e_cell, CC_ENC_MELODY, "cell 7"},
        {e_pitch, CC_ENC_MELODY, "pitch range 60..60"},
        {e_spq, CC_ENC_MELODY, "steps_per_quarter 0: expected 1..960"},
        {e_sps, CC_ENC_PERFORMANCE, "steps_per_second 100.5: expected a whole number"},
        {e_shift, CC_ENC_PERFORMANCE, "max_shift_steps 0"},
        {e_roll_grid, CC_ENC_PIANOROLL, "set exactly one grid"},
        {e_roll_embed, CC_ENC_PIANOROLL, "has no embedding"},
        {e_roll_vocab, CC_ENC_PIANOROLL, "vocab 128, but the encoding's settings give 88"},
        {e_rate, CC_ENC_AUDIO, "sample_rate 0"},
        {e_version, CC_ENC_MELODY, "config version 2"},
        {e_encoding, CC_ENC_MELODY, "encoding 9"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cc_config c = cc_config_default(cases[i].enc), before;
        cases[i].edit(&c);
        before = c;
        char err[256] = "";
        ck_assert_msg(cc_config_resolve(&c, err, sizeof err) == CT_E_ARG, "case %zu resolved", i);
        assert_has(err, cases[i].want);
        ck_assert(cfg_eq(&c, &before));   /* unchanged */
        ck_assert_int_eq(cc_config_num_params(&c), -1);
        char json[512];
        ck_assert_int_eq(cc_config_to_json(&c, json, sizeof json, NULL, 0), -1);
    }
    ck_assert_int_eq(cc_config_resolve(NULL, NULL, 0), CT_E_ARG);
}
END_TEST

static void assert_same_config(const cc_config *a, const cc_config *b) {
    ck_assert_int_eq(cc_config_diff(a, b, NULL, 0), 0);
    ck_assert_int_eq(a->version, b->version);
    ck_assert_msg(a->dropout == b->dropout, "dropout %.9g vs %.9g", (double)a->dropout, (double)b->dropout);
    ck_assert(a->steps_per_second == b->steps_per_second);
}

START_TEST(test_config_json_roundtrip) {
    /* the documented form, byte for byte */
    cc_config m = cc_config_default(CC_ENC_MELODY);
    char json[1024];
    int len = cc_config_to_json(&m, json, sizeof json, NULL, 0);
    ck_assert_str_eq(json, "{\"format\":\"cantor.composer\",\"version\":1,\"model\":\"token_rnn\","
                           "\"encoding\":\"melody\",\"vocab\":38,\"min_pitch\":48,\"max_pitch\":84,"
                           "\"steps_per_quarter\":4,\"cell\":\"lstm\",\"layers\":2,\"hidden\":256,"
                           "\"embed\":64,\"dropout\":0.2}");
    ck_assert_int_eq(len, (int)strlen(json));
    /* snprintf's contract: a short buffer gets a prefix, the length stays */
    char small[10];
    ck_assert_int_eq(cc_config_to_json(&m, small, sizeof small, NULL, 0), len);
    ck_assert_int_eq(strlen(small), 9);
    ck_assert_int_eq(cc_config_to_json(&m, NULL, 0, NULL, 0), len);
    /* every encoding and cell, awkward floats */
    const float drops[] = {0.0f, 0.1f, 0.123456789f, 0.99999994f, 1e-7f};
    for (int e = 0; e < CC_ENC_COUNT; e++)
        for (int cl = 0; cl < CC_CELL_COUNT; cl++) {
            cc_config c = cc_config_default((cc_encoding)e);
            if (e == CC_ENC_TOKENS) c.vocab = 1000;
            if (e == CC_ENC_PIANOROLL && cl == 1) {
                c.steps_per_quarter = 0;
                c.steps_per_second = 31.25 + 1e-9;
            }
            c.cell = (cc_cell)cl;
            c.layers = 1 + cl;
            c.dropout = drops[(e + cl) % 5];
            ck_assert_int_gt(cc_config_to_json(&c, json, sizeof json, NULL, 0), 0);
            cc_config back;
            char err[256] = "";
            ck_assert_msg(cc_config_from_json(json, &back, err, sizeof err) == CT_OK, "%s: %s", json, err);
            ck_assert_int_eq(cc_config_resolve(&c, NULL, 0), CT_OK);
            assert_same_config(&c, &back);
        }
    /* whitespace, key order and escapes are accepted */
    const char *loose = " {\n\t\"version\" : 1 , \"format\":\"cantor.\\u0063omposer\",\"model\":"
                        "\"pianoroll_rnn\",\"encoding\":\"pianoroll\",\"vocab\":88,\"steps_per_quarter\""
                        ":0,\"steps_per_second\":1e2,\"cell\":\"gru\",\"layers\":1,\"hidden\":20,"
                        "\"dropout\":0.5E0}\r\n";
    cc_config r;
    char err[256] = "";
    ck_assert_msg(cc_config_from_json(loose, &r, err, sizeof err) == CT_OK, "%s", err);
    ck_assert_int_eq(r.encoding, CC_ENC_PIANOROLL);
    ck_assert(r.steps_per_second == 100.0);
    ck_assert_int_eq(r.cell, CC_GRU);
    ck_assert(r.dropout == 0.5f);
}
END_TEST

START_TEST(test_config_json_errors) {
    const char *good = "{\"format\":\"cantor.composer\",\"version\":1,\"model\":\"token_rnn\","
                       "\"encoding\":\"melody\",\"vocab\":38,\"min_pitch\":48,\"max_pitch\":84,"
                       "\"steps_per_quarter\":4,\"cell\":\"lstm\",\"layers\":2,\"hidden\":256,"
                       "\"embed\":64,\"dropout\":0.2}";
    struct { const char *json; ct_status s; const char *want; } cases[] = {
        {"", CT_E_FORMAT, "at byte 0 (the end): expected '{'"},
        {"[1]", CT_E_FORMAT, "at byte 0 ('['): expected '{'"},
        {"{", CT_E_FORMAT, "expected a string"},
        {"{}", CT_E_FORMAT, "missing key \"format\""},
        {"{\"format\":\"cantor.composer\",\"format\":1}", CT_E_FORMAT, "duplicate key"},
        {"{\"format\" \"x\"}", CT_E_FORMAT, "expected ':' after a key"},
        {"{\"format\":\"cantor.composer\"} x", CT_E_FORMAT, "unexpected text after the object"},
        {"{\"format\":{}}", CT_E_FORMAT, "nested objects"},
        {"{\"format\":[1]}", CT_E_FORMAT, "nested objects"},
        {"{\"format\":tru}", CT_E_FORMAT, "expected a value"},
        {"{\"format\":\"a\\qb\"}", CT_E_FORMAT, "unknown escape"},
        {"{\"format\":\"a\tb\"}", CT_E_FORMAT, "control character"},
        {"{\"format\":\"\\ud800x\"}", CT_E_FORMAT, "high surrogate"},
        {"{\"format\":\"\\u00\"}", CT_E_FORMAT, "four hex digits"},
        {"{\"format\":\"abc", CT_E_FORMAT, "unterminated string"},
        {"{\"format\":01}", CT_E_FORMAT, "expected ',' or '}'"},
        {"{\"format\":-}", CT_E_FORMAT, "expected a digit"},
        {"{\"format\":1.}", CT_E_FORMAT, "after '.'"},
        {"{\"format\":1e}", CT_E_FORMAT, "exponent"},
        {"{\"format\":1e999}", CT_E_FORMAT, "out of range"},
        {"{\"format\":\"other\"}", CT_E_FORMAT, "\"format\" is \"other\""},
        {"{\"format\":7}", CT_E_FORMAT, "key \"format\" (byte 10): expected a string, got 7"},
        {"{\"format\":\"cantor.composer\",\"version\":2}", CT_E_UNSUPPORTED, "newer than this cantor"},
        {"{\"format\":\"cantor.composer\",\"version\":1.5}", CT_E_FORMAT, "1.5: expected a whole number"},
        {"{\"format\":\"cantor.composer\",\"version\":1,\"encoding\":\"midi\"}", CT_E_FORMAT,
         "unknown encoding \"midi\""},
        {"{\"format\":\"cantor.composer\",\"version\":1,\"encoding\":\"melody\",\"model\":\"pianoroll_rnn\"}",
         CT_E_FORMAT, "but a melody config has model \"token_rnn\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cc_config c = cc_config_default(CC_ENC_AUDIO), before;
        before = c;
        char err[256] = "";
        ct_status s = cc_config_from_json(cases[i].json, &c, err, sizeof err);
        ck_assert_msg(s == cases[i].s, "case %zu (%s): status %d, %s", i, cases[i].json, s, err);
        assert_has(err, cases[i].want);
        ck_assert(cfg_eq(&c, &before));
    }
    /* edits of the good JSON */
    struct { const char *from, *to, *want; } edits[] = {
        {"\"layers\":2", "\"layers\":2.5", "\"layers\" (byte"},
        {"\"layers\":2", "\"layers\":\"2\"", "expected a number, got a string"},
        {"\"layers\":2", "\"layers\":true", "expected a number, got true"},
        {"\"layers\":2,", "", "missing key \"layers\""},
        {"\"vocab\":38", "\"vocab\":39", "vocab 39, but the encoding's settings give 38"},
        {"\"embed\":64", "\"embed\":64,\"sample_rate\":8000", "\"sample_rate\" does not apply to a melody config"},
        {"\"embed\":64", "\"embed\":64,\"colour\":\"red\"", "unknown key \"colour\""},
        {"\"cell\":\"lstm\"", "\"cell\":\"LSTM\"", "unknown cell \"LSTM\""},
        {"\"dropout\":0.2", "\"dropout\":1", "\"dropout\" 1: expected [0, 1)"},
        {"\"hidden\":256", "\"hidden\":-256", "expected a whole number 1..65536"},
        {"\"max_pitch\":84", "\"max_pitch\":40", "pitch range 48..40"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        char buf[1024];
        const char *at = strstr(good, edits[i].from);
        ck_assert_ptr_nonnull(at);
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - good), good, edits[i].to,
                 at + strlen(edits[i].from));
        cc_config c;
        char err[256] = "";
        ck_assert_msg(cc_config_from_json(buf, &c, err, sizeof err) != CT_OK, "edit %zu accepted", i);
        assert_has(err, edits[i].want);
    }
    /* too long; NULLs */
    size_t big = CC_CONFIG_JSON_MAX + 10;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[big] = '\0';
    cc_config c;
    char err[256];
    ck_assert_int_eq(cc_config_from_json(huge, &c, err, sizeof err), CT_E_FORMAT);
    assert_has(err, "longer than");
    free(huge);
    ck_assert_int_eq(cc_config_from_json(NULL, &c, err, sizeof err), CT_E_ARG);
    ck_assert_int_eq(cc_config_from_json(good, NULL, NULL, 0), CT_E_ARG);
    /* mutations of a good config never crash and either parse to a valid config or fail */
    ct_rng rng;
    ct_rng_seed(&rng, 99);
    const char alphabet[] = "{}[]\":,.-+eE0123456789 \\u\tabc";
    size_t n = strlen(good);
    char buf[1024];
    int ok = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(buf, good, n + 1);
        int edits_n = 1 + (int)ct_rng_below(&rng, 3);
        size_t len = n;
        for (int k = 0; k < edits_n; k++) {
            size_t pos = (size_t)ct_rng_below(&rng, len);
            switch (ct_rng_below(&rng, 3)) {
            case 0: buf[pos] = alphabet[ct_rng_below(&rng, sizeof alphabet - 1)]; break;
            case 1: memmove(buf + pos, buf + pos + 1, len - pos); len--; break;
            default: len = pos; buf[len] = '\0'; break;
            }
        }
        cc_config out = {0};
        if (cc_config_from_json(buf, &out, err, sizeof err) == CT_OK) {
            ok++;
            ck_assert_int_eq(cc_config_resolve(&out, NULL, 0), CT_OK);
        } else {
            ck_assert_int_gt(strlen(err), 0);
        }
    }
    ck_assert_int_lt(ok, 3000);
}
END_TEST

START_TEST(test_config_describe_diff) {
    cc_config a = cc_config_default(CC_ENC_PERFORMANCE), b = cc_config_default(CC_ENC_MELODY);
    b.cell = CC_GRU;
    char d[128], diff[512];
    cc_config_describe(&a, d, sizeof d);
    ck_assert_str_eq(d, "performance LSTM 3x512");
    cc_config_describe(&b, d, sizeof d);
    ck_assert_str_eq(d, "melody GRU 2x256");
    int n = cc_config_diff(&a, &b, diff, sizeof diff);
    ck_assert_int_eq(n, 6);
    ck_assert_str_eq(diff, "encoding performance vs melody, vocab 388 vs 38, cell lstm vs gru, "
                           "layers 3 vs 2, hidden 512 vs 256, embed 256 vs 64");
    /* dropout and the version do not matter; encoding settings do */
    cc_config c = cc_config_default(CC_ENC_MELODY), e = c;
    e.dropout = 0.0f;
    e.version = 0;
    ck_assert_int_eq(cc_config_diff(&c, &e, diff, sizeof diff), 0);
    ck_assert_str_eq(diff, "");
    e.steps_per_quarter = 8;
    e.max_pitch = 85;
    e.vocab = 0;
    ck_assert_int_eq(cc_config_diff(&c, &e, diff, sizeof diff), 3);
    ck_assert_str_eq(diff, "vocab 38 vs 39, pitches 48..84 vs 48..85, steps_per_quarter 4 vs 8");
    /* truncation is safe */
    char tiny[8];
    ck_assert_int_eq(cc_config_diff(&a, &b, tiny, sizeof tiny), 6);
    ck_assert_int_eq(strlen(tiny), 7);
    cc_config bad = c;
    bad.layers = 0;
    ck_assert_int_eq(cc_config_diff(&c, &bad, diff, sizeof diff), 1);
    assert_has(diff, "the second is not a valid configuration");
    /* counts */
    char k[32];
    ck_assert_str_eq(cc_format_count(812, k, sizeof k), "812");
    ck_assert_str_eq(cc_format_count(45300, k, sizeof k), "45.3K");
    ck_assert_str_eq(cc_format_count(1234567, k, sizeof k), "1.2M");
    ck_assert_str_eq(cc_format_count(999999, k, sizeof k), "1.0M");
    ck_assert_str_eq(cc_format_count(3000000000LL, k, sizeof k), "3.0G");
}
END_TEST

/* ===== the model ============================================================================ */
START_TEST(test_model_names_shapes) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    cc_config c = cc_config_default(CC_ENC_MELODY);
    ct_module *m = cc_model_new(ctx, &rng, &c);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m->kind, "Composer");
    const char *names[] = {"embed.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0",
                           "rnn.bias_hh_l0", "rnn.weight_ih_l1", "rnn.weight_hh_l1", "rnn.bias_ih_l1",
                           "rnn.bias_hh_l1", "out.weight", "out.bias"};
    const int64_t shapes[][2] = {{38, 64}, {1024, 64}, {1024, 256}, {1024, 0}, {1024, 0},
                                 {1024, 256}, {1024, 256}, {1024, 0}, {1024, 0}, {38, 256}, {38, 0}};
    ck_assert_int_eq(ct_module_param_count(m), 11);
    for (int i = 0; i < 11; i++) {
        char name[128];
        ct_tensor *p = ct_module_param_at(m, i, name, sizeof name);
        ck_assert_str_eq(name, names[i]);
        ck_assert_int_eq(p->ndim, shapes[i][1] ? 2 : 1);
        ck_assert_int_eq(p->shape[0], shapes[i][0]);
        if (shapes[i][1]) ck_assert_int_eq(p->shape[1], shapes[i][1]);
        ck_assert(ct_requires_grad(p));
    }
    ck_assert_int_eq(cc_model_num_params(m), 868262);
    ck_assert_int_eq(cc_config_num_params(&c), 868262);
    char d[128];
    cc_model_describe(m, d, sizeof d);
    ck_assert_str_eq(d, "melody LSTM 2x256, 868.3K parameters");
    ck_assert_ptr_nonnull(cc_model_embed(m));
    ck_assert_ptr_eq(cc_model_rnn(m), ct_module_child(m, "rnn"));
    ck_assert_ptr_eq(cc_model_out(m), ct_module_child(m, "out"));
    const ct_rnn_config *rc = ct_rnn_config_of(cc_model_rnn(m));
    ck_assert_int_eq(rc->mode, CT_LSTM);
    ck_assert(rc->dropout == 0.2f);
    ct_module_free(m);

    /* piano roll: no embedding, 88 in and out */
    cc_config r = tiny_roll(CC_GRU, 20, 1);
    m = cc_model_new(ctx, &rng, &r);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_null(cc_model_embed(m));
    ck_assert_int_eq(ct_module_param_count(m), 6);
    ck_assert_ptr_nonnull(ct_module_param(m, "rnn.weight_ih_l0"));
    ck_assert_int_eq(ct_module_param(m, "rnn.weight_ih_l0")->shape[1], 88);
    ck_assert_int_eq(ct_module_param(m, "out.weight")->shape[0], 88);
    ck_assert_ptr_null(ct_module_param(m, "embed.weight"));
    ck_assert_int_eq(cc_model_num_params(m), cc_config_num_params(&r));
    ck_assert_int_eq(ct_rnn_config_of(cc_model_rnn(m))->dropout == 0.0f, 1);
    cc_model_describe(m, d, sizeof d);
    ck_assert_str_eq(d, "pianoroll GRU 1x20, 8.4K parameters");
    ct_module_free(m);

    /* errors */
    c.layers = 0;
    ck_assert_ptr_null(cc_model_new(ctx, &rng, &c));
    assert_has(errs.last.msg, "cc_model_new: bad configuration: layers 0");
    ck_assert_ptr_null(cc_model_new(ctx, NULL, &r));
    ck_assert_ptr_null(cc_model_config(NULL));
    ct_module *lin = ct_linear_new(ctx, &rng, 2, 2, true);
    ck_assert_ptr_null(cc_model_config(lin));
    ck_assert_int_eq(cc_model_num_params(lin), -1);
    cc_model_describe(lin, d, sizeof d);
    ck_assert_str_eq(d, "(not a composer)");
    ct_module_free(lin);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- PyTorch golden values --------------------------------------------------------------------- */
typedef struct golden_case {
    const char *file;
    bool roll;
    cc_cell cell;
    int64_t vocab, embed, hidden;
    int layers;
} golden_case;

static const golden_case GOLDEN[] = {
    {"models/fixtures/tokens_lstm.npz", false, CC_LSTM, 7, 5, 6, 2},
    {"models/fixtures/tokens_gru.npz", false, CC_GRU, 9, 4, 5, 1},
    {"models/fixtures/tokens_rnn.npz", false, CC_RNN, 6, 3, 4, 2},
    {"models/fixtures/roll_lstm.npz", true, CC_LSTM, 88, 0, 6, 2},
    {"models/fixtures/roll_gru.npz", true, CC_GRU, 88, 0, 5, 1},
};

START_TEST(test_golden_pytorch) {
    const golden_case *g = &GOLDEN[_i];
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 3);
    cc_config c = g->roll ? tiny_roll(g->cell, g->hidden, g->layers)
                          : tiny_tokens(g->cell, g->vocab, g->embed, g->hidden, g->layers);
    ct_module *m = cc_model_new(ctx, &rng, &c);
    ck_assert_ptr_nonnull(m);
    ct_npz *z = ct_npz_open(ctx, g->file);
    ck_assert_msg(z != NULL, "%s: %s", g->file, ct_ctx_error(ctx));
    char name[128], gname[160];
    int np = ct_module_param_count(m);
    for (int i = 0; i < np; i++) {
        ct_tensor *p = ct_module_param_at(m, i, name, sizeof name);
        ct_tensor *v = ct_npz_get(z, name);
        ck_assert_msg(v != NULL, "%s: no %s", g->file, name);
        ck_assert_int_eq(ct_inplace_copy(p, v), CT_OK);
    }
    ct_tensor *x = ct_npz_get(z, "x"), *y = ct_npz_get(z, "y"), *lengths = ct_npz_get(z, "lengths");
    ct_tensor *mask = ct_npz_get(z, "mask");
    ct_batch b = {0};
    b.kind = g->roll ? CT_ITEM_FRAMES : CT_ITEM_TOKENS;
    b.steps = x->shape[0];
    b.rows = x->shape[1];
    b.width = g->roll ? 88 : 1;
    b.inputs = x;
    b.targets = y;
    b.lengths = lengths;
    b.mask = mask;
    ct_tensor *loss;
    int64_t count;
    ck_assert_int_eq(cc_loss(m, &b, -100, NULL, &loss, &count), CT_OK);
    int64_t want_count = 0, *lens = ct_data_i64(lengths);
    for (int64_t i = 0; i < b.rows; i++) want_count += lens[i];
    ck_assert_int_eq(count, want_count);
    float want = (float)ct_item(ct_npz_get(z, "loss"));
    ck_assert_msg(fabsf((float)ct_item(loss) - want) <= 1e-5f + 1e-5f * fabsf(want),
                  "%s: loss %.7f, PyTorch %.7f", g->file, ct_item(loss), (double)want);
    tu_assert_tensors_close(cc_forward(m, x, lengths, NULL), ct_npz_get(z, "logits"), 1e-5, 1e-5);
    ck_assert_int_eq(ct_backward(loss), CT_OK);
    for (int i = 0; i < np; i++) {
        ct_tensor *p = ct_module_param_at(m, i, name, sizeof name);
        snprintf(gname, sizeof gname, "grad.%s", name);
        ct_tensor *gw = ct_npz_get(z, gname);
        ck_assert_ptr_nonnull(gw);
        ck_assert_ptr_nonnull(ct_grad(p));
        tu_assert_tensors_close(ct_grad(p), gw, 1e-5, 1e-4);
    }
    ct_npz_close(z);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- the loss against a hand-built computation -------------------------------------------------- */
/* The summed NLL of one unpadded row, with engine ops: embedding rows, the fused RNN on that
 * row alone (no lengths), x W^T + b, log_softmax, and the targets picked out. */
static ct_tensor *row_nll_tokens(ct_module *m, const int64_t *seq, int64_t n) {
    ct_ctx *ctx = m->ctx;
    ct_tensor *in = ct_from_i64(ctx, seq, 2, (const int64_t[]){n - 1, 1});
    ct_tensor *tg = ct_from_i64(ctx, seq + 1, 2, (const int64_t[]){n - 1, 1});
    ct_tensor *e = ct_embedding(ct_module_param(m, "embed.weight"), in);        /* [n-1, 1, E] */
    ct_tensor *o;
    ck_assert_int_eq(ct_rnn_forward(cc_model_rnn(m), e, NULL, NULL, NULL, NULL, &o, NULL, NULL), CT_OK);
    ct_tensor *h = ct_reshape(o, n - 1, -1);
    ct_tensor *logits = ct_add(ct_matmul(h, ct_transpose(ct_module_param(m, "out.weight"), 0, 1)),
                               ct_module_param(m, "out.bias"));
    ct_tensor *lp = ct_log_softmax(logits, 1);
    ct_tensor *picked = ct_gather(lp, 1, ct_reshape(tg, n - 1, 1));
    return ct_neg(ct_sum_all(picked));
}

START_TEST(test_loss_hand_built_tokens) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 11);
    cc_config c = tiny_tokens(_i == 0 ? CC_LSTM : CC_GRU, 9, 4, 7, 2);
    ct_module *m = cc_model_new(ctx, &rng, &c);
    const int64_t s0[] = {1, 4, 2, 8, 3, 3, 0}, s1[] = {5, 6}, s2[] = {7, 2, 1, 1};
    const int64_t *seqs[] = {s0, s1, s2}, lens[] = {7, 2, 4};
    ct_batch b;
    mh_token_batch(ctx, 3, seqs, lens, &b);
    ck_assert_int_eq(b.steps, 6);
    ct_tensor *loss;
    int64_t count;
    ck_assert_int_eq(cc_loss(m, &b, -100, NULL, &loss, &count), CT_OK);
    ck_assert_int_eq(count, 6 + 1 + 3);
    ct_tensor *sum = ct_add(ct_add(row_nll_tokens(m, s0, 7), row_nll_tokens(m, s1, 2)),
                            row_nll_tokens(m, s2, 4));
    double want = ct_item(sum) / 10.0;
    ck_assert_msg(fabs(ct_item(loss) - want) < 1e-5, "loss %.7f, by hand %.7f", ct_item(loss), want);
    /* the padding does not count: other pad tokens and a different ignore_index marking */
    ct_tensor *x2 = ct_clone(b.inputs), *y2 = ct_clone(b.targets);
    int64_t *xi = ct_data_i64(x2), *yi = ct_data_i64(y2);
    for (int64_t t = 0; t < b.steps; t++)
        for (int64_t r = 0; r < b.rows; r++)
            if (t >= lens[r] - 1) {
                xi[t * b.rows + r] = 8;
                yi[t * b.rows + r] = -1;
            }
    ct_batch b2 = b;
    b2.inputs = x2;
    b2.targets = y2;
    ct_tensor *loss2;
    int64_t count2;
    ck_assert_int_eq(cc_loss(m, &b2, -1, NULL, &loss2, &count2), CT_OK);
    ck_assert_int_eq(count2, 10);
    ck_assert_msg(ct_item(loss2) == ct_item(loss), "%.9g vs %.9g", ct_item(loss2), ct_item(loss));
    ct_batch_clear(&b);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_loss_hand_built_roll) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 12);
    cc_config c = tiny_roll(CC_LSTM, 6, 2);
    ct_module *m = cc_model_new(ctx, &rng, &c);
    const int64_t lens[] = {5, 3};
    float *f[2];
    for (int r = 0; r < 2; r++) {
        f[r] = calloc((size_t)lens[r] * 88, sizeof(float));
        for (int64_t i = 0; i < lens[r] * 88; i++) f[r][i] = ct_rng_uniform(&rng) < 0.2 ? 1.0f : 0.0f;
    }
    ct_batch b;
    mh_frame_batch(ctx, 2, (const float *const *)f, lens, &b);
    ct_tensor *loss;
    int64_t count;
    ck_assert_int_eq(cc_loss(m, &b, -100, NULL, &loss, &count), CT_OK);
    ck_assert_int_eq(count, 4 + 2);
    double total = 0;
    for (int r = 0; r < 2; r++) {
        int64_t n = lens[r] - 1;
        ct_tensor *in = ct_from_f32(ctx, f[r], 3, (const int64_t[]){n, 1, 88});
        ct_tensor *tg = ct_from_f32(ctx, f[r] + 88, 2, (const int64_t[]){n, 88});
        ct_tensor *o;
        ck_assert_int_eq(ct_rnn_forward(cc_model_rnn(m), in, NULL, NULL, NULL, NULL, &o, NULL, NULL), CT_OK);
        ct_tensor *z = ct_add(ct_matmul(ct_reshape(o, n, -1), ct_transpose(ct_module_param(m, "out.weight"), 0, 1)),
                              ct_module_param(m, "out.bias"));
        /* -[y log s(z) + (1-y) log(1 - s(z))], written out */
        ct_tensor *s = ct_sigmoid(z);
        ct_tensor *nll = ct_neg(ct_add(ct_mul(tg, ct_log(s)),
                                       ct_mul(ct_rsub_scalar(1.0f, tg), ct_log(ct_rsub_scalar(1.0f, s)))));
        total += ct_item(ct_sum_all(nll));
    }
    ck_assert_msg(fabs(ct_item(loss) - total / 6.0) < 1e-4, "loss %.7f, by hand %.7f", ct_item(loss), total / 6.0);
    /* garbage in the padding changes nothing */
    ct_tensor *x2 = ct_clone(b.inputs), *y2 = ct_clone(b.targets);
    float *xv = ct_data_f32(x2), *yv = ct_data_f32(y2);
    for (int64_t t = 2; t < 4; t++)
        for (int k = 0; k < 88; k++) {
            xv[(t * 2 + 1) * 88 + k] = 1.0f;
            yv[(t * 2 + 1) * 88 + k] = 1.0f;
        }
    ct_batch b2 = b;
    b2.inputs = x2;
    b2.targets = y2;
    ct_tensor *loss2;
    ck_assert_int_eq(cc_loss(m, &b2, -100, NULL, &loss2, &count), CT_OK);
    ck_assert(ct_item(loss2) == ct_item(loss));
    ct_batch_clear(&b);
    free(f[0]);
    free(f[1]);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_gradients_reach_every_parameter) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 5);
    const bool roll = _i == 3;
    cc_config c = roll ? tiny_roll(CC_LSTM, 5, 2) : tiny_tokens((cc_cell)_i, 6, 4, 5, 2);
    c.dropout = 0.3f;
    ct_module *m = cc_model_new(ctx, &rng, &c);
    ct_batch b;
    if (roll) {
        float fr[4 * 88];
        for (int i = 0; i < 4 * 88; i++) fr[i] = (i % 7) == 0;
        const float *fs[] = {fr, fr};
        const int64_t lens[] = {4, 3};
        mh_frame_batch(ctx, 2, fs, lens, &b);
    } else {
        const int64_t s0[] = {0, 1, 2, 3, 4, 5}, s1[] = {5, 4, 3};
        const int64_t *seqs[] = {s0, s1}, lens[] = {6, 3};
        mh_token_batch(ctx, 2, seqs, lens, &b);
    }
    ct_tensor *loss;
    int64_t count;
    ck_assert_int_eq(cc_loss(m, &b, -100, &rng, &loss, &count), CT_OK);
    ck_assert_int_eq(ct_backward(loss), CT_OK);
    char name[128];
    for (int i = 0; i < ct_module_param_count(m); i++) {
        ct_tensor *p = ct_module_param_at(m, i, name, sizeof name);
        ct_tensor *g = ct_grad(p);
        ck_assert_msg(g != NULL, "%s has no gradient", name);
        double s = ct_item(ct_sum_all(ct_mul(g, g)));
        ck_assert_msg(s > 0 && isfinite(s), "%s: gradient norm^2 %g", name, s);
    }
    /* dropout (training) needs an rng; eval mode does not, and is deterministic */
    ck_assert_int_ne(cc_loss(m, &b, -100, NULL, &loss, &count), CT_OK);
    ct_module_train(m, false);
    ct_tensor *l1, *l2;
    ck_assert_int_eq(cc_loss(m, &b, -100, NULL, &l1, &count), CT_OK);
    ck_assert_int_eq(cc_loss(m, &b, -100, NULL, &l2, &count), CT_OK);
    ck_assert(ct_item(l1) == ct_item(l2));
    ct_batch_clear(&b);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_learns_pattern) {
    ct_ctx *ctx = tu_ctx(NULL);
    float first, last;
    ct_module *m = mh_train_pattern(ctx, _i == 0 ? CC_LSTM : CC_GRU, 120, &first, &last);
    ck_assert_msg(first > 1.2f && last < 0.05f, "loss %.4f -> %.4f", (double)first, (double)last);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_roll_learns_and_bias_init) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 21);
    cc_config c = tiny_roll(CC_LSTM, 24, 1);
    ct_module *m = cc_model_new(ctx, &rng, &c);
    /* alternating chords: C major (keys 39, 43, 46), then D minor (41, 44, 48) */
    float fr[3][9 * 88];
    memset(fr, 0, sizeof fr);
    for (int r = 0; r < 3; r++)
        for (int t = 0; t < 9; t++) {
            bool a = ((t + r) % 2) == 0;
            fr[r][t * 88 + (a ? 39 : 41)] = fr[r][t * 88 + (a ? 43 : 44)] = fr[r][t * 88 + (a ? 46 : 48)] = 1;
        }
    const float *fs[] = {fr[0], fr[1], fr[2]};
    const int64_t lens[] = {9, 9, 7};
    /* the output bias from smoothed key frequencies */
    int64_t on[88] = {0}, frames = 0;
    for (int r = 0; r < 3; r++)
        for (int64_t t = 0; t < lens[r]; t++, frames++)
            for (int k = 0; k < 88; k++) on[k] += fr[r][t * 88 + k] != 0;
    double freq[88];
    cc_smoothed_frequencies(on, frames, 88, freq);
    ck_assert(fabs(freq[0] - 1.0 / 27.0) < 1e-12);
    ct_scope_begin(ctx);
    ct_batch b;
    mh_frame_batch(ctx, 3, fs, lens, &b);
    ct_tensor *before;
    int64_t count;
    ck_assert_int_eq(cc_loss(m, &b, -100, NULL, &before, &count), CT_OK);
    ck_assert_int_eq(count, 8 + 8 + 6);
    ck_assert_int_eq(cc_model_init_output_bias(m, freq, 88), CT_OK);
    const float *bias = ct_data_f32(ct_module_param(m, "out.bias"));
    ck_assert(fabsf(bias[39] - (float)log(freq[39] / (1 - freq[39]))) < 1e-6f);
    ck_assert(fabsf(bias[0] - (float)log(1.0 / 26.0)) < 1e-5f);
    ct_tensor *after;
    ck_assert_int_eq(cc_loss(m, &b, -100, NULL, &after, &count), CT_OK);
    ck_assert_msg(ct_item(after) < 0.5 * ct_item(before), "bias init: %.3f -> %.3f", ct_item(before), ct_item(after));
    ct_batch_clear(&b);
    ct_scope_end(ctx);
    /* training */
    ct_optim *opt = ct_adam_new(m, ct_adam_defaults(0.03));
    double first = 0, last = 0;
    for (int s = 0; s < 80; s++) {
        ct_scope_begin(ctx);
        mh_frame_batch(ctx, 3, fs, lens, &b);
        ct_tensor *loss;
        ck_assert_int_eq(cc_loss(m, &b, -100, NULL, &loss, &count), CT_OK);
        if (s == 0) first = ct_item(loss);
        last = ct_item(loss);
        ct_optim_zero_grad(opt);
        ck_assert_int_eq(ct_backward(loss), CT_OK);
        ck_assert_int_eq(ct_optim_step(opt), CT_OK);
        ct_batch_clear(&b);
        ct_scope_end(ctx);
    }
    ck_assert_msg(last < 0.1 * first && last < 0.5, "loss %.4f -> %.4f", first, last);
    ct_optim_free(opt);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_output_bias_tokens_and_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 2);
    cc_config c = tiny_tokens(CC_LSTM, 4, 3, 3, 1);
    ct_module *m = cc_model_new(ctx, &rng, &c);
    const double freq[4] = {0.5, 0.25, 0.25, 0.0};
    ck_assert_int_eq(cc_model_init_output_bias(m, freq, 4), CT_OK);
    const float *b = ct_data_f32(ct_module_param(m, "out.bias"));
    ck_assert(fabsf(b[0] - logf(0.5f)) < 1e-6f && fabsf(b[1] - logf(0.25f)) < 1e-6f);
    ck_assert(fabsf(b[3] - logf(1e-6f)) < 1e-4f);
    float keep = b[0];
    ck_assert_int_eq(cc_model_init_output_bias(m, freq, 3), CT_E_ARG);
    assert_has(errs.last.msg, "3 frequencies, but the model has 4 outputs");
    const double bad[4] = {0.5, NAN, 0.2, 0.1};
    ck_assert_int_eq(cc_model_init_output_bias(m, bad, 4), CT_E_ARG);
    assert_has(errs.last.msg, "freq[1] = nan is not in [0, 1]");
    ck_assert(b[0] == keep);
    ck_assert_int_eq(cc_model_init_output_bias(m, NULL, 4), CT_E_NULL);
    ct_module *lin = ct_linear_new(ctx, &rng, 2, 2, true);
    ck_assert_int_eq(cc_model_init_output_bias(lin, freq, 4), CT_E_ARG);
    assert_has(errs.last.msg, "is not a composer");
    ct_module_free(lin);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_forward_and_loss_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 2);
    cc_config c = tiny_tokens(CC_LSTM, 5, 3, 4, 1);
    ct_module *m = cc_model_new(ctx, &rng, &c);
    ct_module *r = cc_model_new(ctx, &rng, &(cc_config){.encoding = CC_ENC_PIANOROLL, .steps_per_quarter = 4,
                                                         .cell = CC_GRU, .layers = 1, .hidden = 3});
    ck_assert_ptr_nonnull(r);
    /* forward */
    ck_assert_ptr_null(cc_forward(m, ct_zeros(ctx, CT_SHAPE(3, 2)), NULL, NULL));
    assert_has(errs.last.msg, "cc_forward: input float32 [3, 2]: the tokens model takes int64 tokens [T, B]");
    assert_has(errs.last.msg, "test_models.c:");
    ck_assert_ptr_null(cc_forward(r, ct_zeros(ctx, CT_SHAPE(3, 2, 87)), NULL, NULL));
    assert_has(errs.last.msg, "the piano-roll model takes float32 frames [T, B, 88]");
    int64_t toks[6] = {0, 1, 2, 3, 4, 5};
    ck_assert_ptr_null(cc_forward(m, ct_from_i64(ctx, toks, CT_SHAPE(3, 2)), NULL, NULL));
    assert_has(errs.last.msg, "tokens[2][1] = 5 is outside [0, V = 5)");
    assert_has(errs.last.msg, "test_models.c:");
    ct_tensor *ok = cc_forward(m, ct_from_i64(ctx, toks, CT_SHAPE(2, 2)), NULL, NULL);
    ck_assert_ptr_nonnull(ok);
    ck_assert_int_eq(ok->shape[2], 5);
    ct_tensor *fr = cc_forward(r, ct_zeros(ctx, CT_SHAPE(3, 2, 88)), NULL, NULL);
    ck_assert_int_eq(fr->shape[0], 3);
    ck_assert_int_eq(fr->shape[2], 88);
    ct_module *lin = ct_linear_new(ctx, &rng, 2, 2, true);
    ck_assert_ptr_null(cc_forward(lin, ok, NULL, NULL));
    assert_has(errs.last.msg, "is not a composer");
    /* the single-input forward works too (Sequential use) */
    ck_assert_ptr_nonnull(ct_module_forward(m, ct_from_i64(ctx, toks, CT_SHAPE(2, 2)), NULL));
    /* loss */
    const int64_t s0[] = {0, 1, 2}, *seqs[] = {s0}, lens[] = {3};
    ct_batch b;
    mh_token_batch(ctx, 1, seqs, lens, &b);
    ct_tensor *loss;
    int64_t count = 7;
    ct_batch nb = b;
    nb.targets = NULL;
    ck_assert_int_eq(cc_loss(m, &nb, -100, NULL, &loss, &count), CT_E_ARG);
    assert_has(errs.last.msg, "collate with opts.targets = true");
    ck_assert_ptr_null(loss);
    ck_assert_int_eq(count, 0);
    ck_assert_int_eq(cc_loss(r, &b, -100, NULL, &loss, &count), CT_E_ARG);
    assert_has(errs.last.msg, "a batch of tokens (width 1) for a pianoroll model, which needs frames of width 88");
    ct_batch bf = b;
    bf.inputs = ct_transpose(b.inputs, 0, 1);
    bf.targets = ct_transpose(b.targets, 0, 1);
    ck_assert_int_eq(cc_loss(m, &bf, -100, NULL, &loss, &count), CT_E_SHAPE);
    assert_has(errs.last.msg, "collate with batch_first = false");
    ct_batch bt = b;
    bt.targets = ct_zeros(ctx, CT_SHAPE(1, 1));
    ck_assert_int_eq(cc_loss(m, &bt, -100, NULL, &loss, &count), CT_E_SHAPE);
    ck_assert_int_eq(cc_loss(lin, &b, -100, NULL, &loss, &count), CT_E_ARG);
    ck_assert_int_eq(cc_loss(m, NULL, -100, NULL, &loss, &count), CT_E_NULL);
    ck_assert_int_eq(cc_loss(m, &b, -100, NULL, NULL, &count), CT_E_NULL);
    /* ignore_index counts: targets {1, 2} with 1 ignored; every target ignored: 0 and 0 */
    ck_assert_int_eq(cc_loss(m, &b, 1, NULL, &loss, &count), CT_OK);
    ck_assert_int_eq(count, 1);
    ct_batch bi = b;
    bi.targets = ct_from_i64(ctx, (const int64_t[]){-100, -100}, CT_SHAPE(2, 1));
    ck_assert_int_eq(cc_loss(m, &bi, -100, NULL, &loss, &count), CT_OK);
    ck_assert_int_eq(count, 0);
    ck_assert(ct_item(loss) == 0.0);
    ck_assert_int_eq(cc_loss(m, &b, -100, NULL, &loss, NULL), CT_OK);
    ct_batch_clear(&b);
    ct_module_free(lin);
    ct_module_free(m);
    ct_module_free(r);
    ct_ctx_free(ctx);
}
END_TEST

/* ===== checkpoints ========================================================================== */
START_TEST(test_checkpoint_roundtrip) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 4);
    const bool roll = _i == 1;
    cc_config c = roll ? tiny_roll(CC_GRU, 7, 2) : cc_config_default(CC_ENC_MELODY);
    if (!roll) {
        c.hidden = 16;
        c.embed = 8;
        c.cell = CC_LSTM;
        c.dropout = 0.25f;
    }
    ct_module *m = cc_model_new(ctx, &rng, &c);
    /* flattened by an optimizer, as after training */
    ct_optim *opt = ct_adam_new(m, ct_adam_defaults(1e-3));
    ck_assert_ptr_nonnull(opt);
    char path[256];
    tmp_path(path, sizeof path, roll ? "ckpt_roll" : "ckpt_melody");
    const char *keys[] = {"seed", "step"}, *vals[] = {"1234", "77"};
    ck_assert_int_eq(cc_save(path, m, 2, keys, vals), CT_OK);
    /* the metadata */
    ct_safetensors *f = ct_safetensors_open(ctx, path);
    ck_assert_ptr_nonnull(f);
    ck_assert_str_eq(ct_safetensors_meta(f, "seed"), "1234");
    ck_assert_str_eq(ct_safetensors_meta(f, "step"), "77");
    char json[1024];
    cc_config_to_json(cc_model_config(m), json, sizeof json, NULL, 0);
    ck_assert_str_eq(ct_safetensors_meta(f, "cantor_config"), json);
    ct_safetensors_close(f);
    cc_config rc;
    ck_assert_int_eq(cc_read_config(ctx, path, &rc), CT_OK);
    assert_same_config(&rc, cc_model_config(m));
    /* a model built from the file gives identical logits */
    ct_module *back = cc_load(ctx, path);
    ck_assert_msg(back != NULL, "%s", errs.last.msg);
    assert_same_config(cc_model_config(back), cc_model_config(m));
    ct_module_train(m, false);
    ct_module_train(back, false);
    ct_tensor *x;
    if (roll) {
        x = ct_bernoulli(&rng, ct_full(ctx, 0.2f, CT_SHAPE(5, 3, 88)));
    } else {
        int64_t t[15];
        for (int i = 0; i < 15; i++) t[i] = (i * 7) % 38;
        x = ct_from_i64(ctx, t, CT_SHAPE(5, 3));
    }
    const int64_t lv[3] = {5, 2, 4};
    ct_tensor *lengths = ct_from_i64(ctx, lv, CT_SHAPE(3));
    ct_tensor *a = cc_forward(m, x, lengths, NULL), *b = cc_forward(back, x, lengths, NULL);
    float *av = host_f32(a), *bv = host_f32(b);
    ck_assert_int_eq(memcmp(av, bv, sizeof(float) * (size_t)ct_numel(a)), 0);
    free(av);
    free(bv);
    /* into an existing model of the same config (dropout may differ) */
    cc_config c2 = c;
    c2.dropout = 0.0f;
    ct_module *same = cc_model_new(ctx, &rng, &c2);
    ck_assert_int_eq(cc_load_weights(same, path), CT_OK);
    ct_module_train(same, false);
    ct_tensor *s = cc_forward(same, x, lengths, NULL);
    av = host_f32(a);
    bv = host_f32(s);
    ck_assert_int_eq(memcmp(av, bv, sizeof(float) * (size_t)ct_numel(a)), 0);
    free(av);
    free(bv);
    /* a reserved key is refused */
    const char *rk[] = {"cantor_config"}, *rv[] = {"{}"};
    ck_assert_int_eq(cc_save(path, m, 1, rk, rv), CT_E_ARG);
    assert_has(errs.last.msg, "is written by cc_save itself");
    ck_assert_int_eq(unlink(path), 0);
    ct_optim_free(opt);
    ct_module_free(m);
    ct_module_free(back);
    ct_module_free(same);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_checkpoint_refusals) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 8);
    cc_config pc = cc_config_default(CC_ENC_PERFORMANCE);
    pc.hidden = 12;
    pc.embed = 6;
    ct_module *perf = cc_model_new(ctx, &rng, &pc);
    char path[256], path2[256];
    tmp_path(path, sizeof path, "ckpt_perf");
    ck_assert_int_eq(cc_save(path, perf, 0, NULL, NULL), CT_OK);
    /* another model */
    cc_config mc = cc_config_default(CC_ENC_MELODY);
    mc.cell = CC_GRU;
    mc.hidden = 8;
    mc.embed = 4;
    ct_module *mel = cc_model_new(ctx, &rng, &mc);
    float before = ct_data_f32(ct_module_param(mel, "out.bias"))[0];
    ck_assert_int_eq(cc_load_weights(mel, path), CT_E_FORMAT);
    char want[512];
    snprintf(want, sizeof want, "%s: a performance LSTM 3x12 checkpoint, but the model asked for is "
             "melody GRU 2x8 (checkpoint vs model: encoding performance vs melody, vocab 388 vs 38, "
             "cell lstm vs gru, layers 3 vs 2, hidden 12 vs 8, embed 6 vs 4)", path);
    ck_assert_str_eq(errs.last.msg, want);
    ck_assert(ct_data_f32(ct_module_param(mel, "out.bias"))[0] == before);
    /* the same description, another setting */
    cc_config pc2 = pc;
    pc2.max_shift_steps = 50;
    pc2.vocab = 0;
    ct_module *perf2 = cc_model_new(ctx, &rng, &pc2);
    ck_assert_int_eq(cc_load_weights(perf2, path), CT_E_FORMAT);
    assert_has(errs.last.msg, "a performance LSTM 3x12 checkpoint, but the model asked for is "
                              "performance LSTM 3x12 (checkpoint vs model: vocab 388 vs 338, "
                              "max_shift_steps 100 vs 50)");
    /* weights without a config */
    tmp_path(path2, sizeof path2, "ckpt_plain");
    ck_assert_int_eq(ct_safetensors_save(path2, perf, 0, NULL, NULL), CT_OK);
    ck_assert_ptr_null(cc_load(ctx, path2));
    assert_has(errs.last.msg, "no \"cantor_config\" in the safetensors metadata: not a cantor composer checkpoint");
    assert_has(errs.last.msg, path2);
    cc_config rc;
    ck_assert_int_eq(cc_read_config(ctx, path2, &rc), CT_E_FORMAT);
    ck_assert_int_eq(cc_load_weights(perf, path2), CT_E_FORMAT);
    /* a malformed config */
    const char *k[] = {"cantor_config"}, *bad[] = {"{\"format\":\"cantor.composer\",\"version\":1,"};
    ck_assert_int_eq(ct_safetensors_save(path2, perf, 1, k, bad), CT_OK);
    ck_assert_ptr_null(cc_load(ctx, path2));
    assert_has(errs.last.msg, "\"cantor_config\" metadata: at byte");
    /* a newer version */
    const char *newer[] = {"{\"format\":\"cantor.composer\",\"version\":9}"};
    ck_assert_int_eq(ct_safetensors_save(path2, perf, 1, k, newer), CT_OK);
    ck_assert_ptr_null(cc_load(ctx, path2));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_UNSUPPORTED);
    assert_has(errs.last.msg, "update cantor");
    /* a config that does not describe the tensors: refused before anything is allocated */
    char json[1024];
    cc_config huge = pc;
    huge.hidden = 65536;
    huge.layers = 64;
    cc_config_to_json(&huge, json, sizeof json, NULL, 0);
    const char *hv[] = {json};
    ck_assert_int_eq(ct_safetensors_save(path2, perf, 1, k, hv), CT_OK);
    ck_assert_ptr_null(cc_load(ctx, path2));
    assert_has(errs.last.msg, "its config describes a performance LSTM 64x65536 with");
    assert_has(errs.last.msg, "the file is damaged or was not written by cc_save");
    /* a missing file */
    ck_assert_ptr_null(cc_load(ctx, "tmp/no_such_checkpoint.safetensors"));
    assert_has(errs.last.msg, "no_such_checkpoint");
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(unlink(path2), 0);
    ct_module_free(perf);
    ct_module_free(perf2);
    ct_module_free(mel);
    ct_ctx_free(ctx);
}
END_TEST


/* ===== stepping with the output layer, on one thread and on several ========================== */
/* A composer big enough for the batch-1 step to use a worker thread (2M weights or more; a
 * stepper's first steps use it), with a hidden size that is not a multiple of 8:
 * ct_rnn_step_linear_f32 gives the same bits on one thread and on two, the same h as
 * ct_rnn_step_f32 followed by the Linear, and the logits of the whole-sequence forward. */
START_TEST(test_step_linear_threads) {
    const cc_cell cells[3] = {CC_LSTM, CC_GRU, CC_RNN};
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 31);
    cc_config c = tiny_tokens(cells[_i], 50, 30, _i == 2 ? 1001 : 516, 2);
    ct_module *m = cc_model_new(ctx, &rng, &c);
    ck_assert_ptr_nonnull(m);
    ct_module_train(m, false);
    ct_module *rnn = cc_model_rnn(m), *out = cc_model_out(m);
    ct_tensor *w = ct_module_param(out, "weight"), *bias = ct_module_param(out, "bias");
    const float *emb = ct_data_f32(ct_module_param(cc_model_embed(m), "weight"));
    const int T = 12, V = 50, H = (int)c.hidden;
    int64_t toks[12];
    for (int t = 0; t < T; t++) toks[t] = (int64_t)ct_rng_below(&rng, V);
    ct_tensor *x = ct_from_i64(ctx, toks, CT_SHAPE(T, 1));
    ct_tensor *want = cc_forward(m, x, NULL, NULL);
    ck_assert_ptr_nonnull(want);
    const int threads = ct_blas_threads();
    ct_blas_set_threads(1);
    ct_rnn_state *s1 = ct_rnn_state_new(rnn, 1), *s3 = ct_rnn_state_new(rnn, 1);
    ct_blas_set_threads(2);
    ct_rnn_state *s2 = ct_rnn_state_new(rnn, 1);
    ct_blas_set_threads(threads);
    ck_assert(s1 && s2 && s3);
    float l1[50], l2[50], l3[50];
    for (int t = 0; t < T; t++) {
        const float *xt = emb + toks[t] * c.embed, *h1, *h2, *h3;
        ck_assert_int_eq(ct_rnn_step_linear_f32(rnn, xt, s1, w, bias, l1, &h1), CT_OK);
        ck_assert_int_eq(ct_rnn_step_linear_f32(rnn, xt, s2, w, bias, l2, &h2), CT_OK);
        ck_assert_int_eq(ct_rnn_step_f32(rnn, xt, s3, &h3), CT_OK);
        ck_assert_int_eq(memcmp(l1, l2, sizeof l1), 0);
        ck_assert_int_eq(memcmp(h1, h2, sizeof(float) * (size_t)H), 0);
        ck_assert_int_eq(memcmp(h1, h3, sizeof(float) * (size_t)H), 0);
        ct_tensor *ht = ct_wrap_f32(ctx, (float *)h3, CT_SHAPE(1, H));
        ct_tensor *lin = ct_linear_forward_at(CT_SRC, out, ht);
        tu_assert_close_impl(__FILE__, __LINE__, lin, l1, 1e-5, 1e-5);
        tu_assert_close_impl(__FILE__, __LINE__, ct_select(want, 0, t), l1, 1e-5, 1e-4);
    }
    ck_assert_int_eq(memcmp(ct_data_f32(ct_rnn_state_h(s1)), ct_data_f32(ct_rnn_state_h(s2)),
                            sizeof(float) * (size_t)(2 * H)), 0);
    /* errors */
    const float *xt = emb;
    ck_assert_int_eq(ct_rnn_step_linear_f32(rnn, xt, s1, ct_zeros(ctx, CT_SHAPE(V, H + 1)), NULL,
                                            l1, NULL), CT_E_SHAPE);
    assert_has(errs.last.msg, "rnn_step_linear: the weight has shape");
    assert_has(errs.last.msg, "needs [V, ");
    ck_assert_int_eq(ct_rnn_step_linear_f32(rnn, xt, s1, w, ct_zeros(ctx, CT_SHAPE(V - 1)), l1,
                                            NULL), CT_E_SHAPE);
    assert_has(errs.last.msg, "the bias has shape [49]");
    ck_assert_int_eq(ct_rnn_step_linear_f32(rnn, xt, s1, ct_transpose(ct_zeros(ctx, CT_SHAPE(H, V)), 0, 1),
                                            NULL, l1, NULL), CT_E_ARG);
    assert_has(errs.last.msg, "must be a contiguous float32 tensor of the module's context on its device (cpu)");
    ck_assert_int_eq(ct_rnn_step_linear_f32(rnn, xt, s1, w, bias, NULL, NULL), CT_E_NULL);
    assert_has(errs.last.msg, "logits is NULL");
    ck_assert_int_eq(ct_rnn_step_linear_f32(rnn, NULL, s1, w, bias, l1, NULL), CT_E_NULL);
    ck_assert_int_eq(ct_rnn_step_linear_f32(out, xt, s1, w, bias, l1, NULL), CT_E_ARG);
    (void)l3;
    ct_rnn_state_free(s1);
    ct_rnn_state_free(s2);
    ct_rnn_state_free(s3);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

/* ===== the fused layers over more than one backward block ==================================== */
/* The fused backward runs in blocks of about 2048 rows (T*B) and an LSTM recomputes its cell
 * states from per-block checkpoints; here T*B = 33*70 spans two blocks (the second partial),
 * with variable lengths across the boundary and given h0, c0: every output and gradient
 * matches cells built from primitive ops, and the embedded path matches the plain one. */
static void reference_layers(ct_module *rnn, ct_module *const *cells, ct_tensor *x,
                             const int64_t *lens, ct_tensor *h0, ct_tensor *c0, ct_tensor **out,
                             ct_tensor **hn, ct_tensor **cn) {
    const ct_rnn_config *cfg = ct_rnn_config_of(rnn);
    const int64_t T = x->shape[0], B = x->shape[1];
    ct_ctx *ctx = x->ctx;
    ct_tensor *masks[64], *in = x, *hs[4], *cs[4], *steps[64];
    float *mv = malloc(sizeof(float) * (size_t)B);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t b = 0; b < B; b++) mv[b] = t < lens[b] ? 1.0f : 0.0f;
        masks[t] = ct_from_f32(ctx, mv, CT_SHAPE(B, 1));
    }
    free(mv);
    for (int l = 0; l < cfg->num_layers; l++) {
        ct_tensor *h = ct_select(h0, 0, l), *cc = c0 ? ct_select(c0, 0, l) : NULL;
        for (int64_t t = 0; t < T; t++) {
            ct_tensor *xt = ct_select(in, 0, t), *hnew, *cnew = NULL;
            if (cfg->mode == CT_LSTM)
                ck_assert_int_eq(ct_lstm_cell_forward(cells[l], xt, h, cc, &hnew, &cnew), CT_OK);
            else if (cfg->mode == CT_GRU)
                hnew = ct_gru_cell_forward(cells[l], xt, h);
            else
                hnew = ct_rnn_cell_forward(cells[l], xt, h);
            ct_tensor *m = masks[t], *keep = ct_rsub_scalar(1.0f, m);
            steps[t] = ct_mul(hnew, m);
            h = ct_add(steps[t], ct_mul(h, keep));
            if (cnew) cc = ct_add(ct_mul(cnew, m), ct_mul(cc, keep));
        }
        hs[l] = h;
        cs[l] = cc;
        in = ct_stack((int)T, steps, 0);
    }
    *out = in;
    *hn = ct_stack(cfg->num_layers, hs, 0);
    *cn = c0 ? ct_stack(cfg->num_layers, cs, 0) : NULL;
}

START_TEST(test_blocked_backward) {
    const ct_rnn_mode modes[3] = {CT_LSTM, CT_GRU, CT_RNN_TANH};
    const ct_rnn_mode mode = modes[_i];
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 41 + _i);
    const int64_t T = 33, B = 70, I = 3, H = 5, V = 9;
    const int L = 2;
    ct_rnn_config cfg = {mode, I, H, L, true, false, 0.0f};
    ct_module *rnn = ct_rnn_new(ctx, &rng, &cfg);
    ct_module *cells[2];
    for (int l = 0; l < L; l++) {
        int64_t in = l ? H : I;
        cells[l] = mode == CT_LSTM ? ct_lstm_cell_new(ctx, &rng, in, H, true)
                 : mode == CT_GRU ? ct_gru_cell_new(ctx, &rng, in, H, true)
                                  : ct_rnn_cell_new(ctx, &rng, in, H, true, CT_RNN_TANH);
        const char *names[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
        char fused[32];
        for (int k = 0; k < 4; k++) {
            snprintf(fused, sizeof fused, "%s_l%d", names[k], l);
            ck_assert_int_eq(ct_inplace_copy(ct_module_param(cells[l], names[k]),
                                             ct_module_param(rnn, fused)), CT_OK);
        }
    }
    int64_t lens[70], tok[33 * 70];
    for (int64_t b = 0; b < B; b++) lens[b] = b % 4 == 0 ? T : 1 + (b * 7) % T;
    for (int64_t i = 0; i < T * B; i++) tok[i] = (int64_t)ct_rng_below(&rng, V);
    /* three copies of the table: the embedded path, the plain one, the cells */
    ct_tensor *emb = TU_RAND(ctx, 1, -1, 1, V, I), *emb2 = ct_clone(emb), *emb3 = ct_clone(emb);
    ct_tensor *tokens = ct_from_i64(ctx, tok, CT_SHAPE(T, B));
    ct_tensor *h0 = TU_RAND(ctx, 2, -1, 1, L, B, H), *h0r = ct_clone(h0);
    ct_tensor *c0 = mode == CT_LSTM ? TU_RAND(ctx, 3, -1, 1, L, B, H) : NULL;
    ct_tensor *c0r = c0 ? ct_clone(c0) : NULL;
    ct_tensor *ins[7] = {emb, emb2, emb3, h0, h0r, c0, c0r};
    for (int i = 0; i < 7; i++)
        if (ins[i]) ct_set_requires_grad(ins[i], true);
    ct_tensor *x = ct_embedding(emb2, tokens), *xr = ct_embedding(emb3, tokens);
    ct_tensor *lengths = ct_from_i64(ctx, lens, CT_SHAPE(B));
    ct_tensor *p1 = TU_RAND(ctx, 4, -1, 1, T, B, H), *p2 = TU_RAND(ctx, 5, -1, 1, L, B, H);
    ct_tensor *p3 = TU_RAND(ctx, 6, -1, 1, L, B, H);
    /* fused, embedded */
    ct_tensor *out, *hn, *cn;
    ck_assert_int_eq(ct_rnn_forward_embedded(rnn, emb, tokens, lengths, h0, c0, NULL, &out, &hn,
                                             &cn), CT_OK);
    ct_tensor *loss = ct_add(ct_sum_all(ct_mul(out, p1)), ct_sum_all(ct_mul(hn, p2)));
    if (cn) loss = ct_add(loss, ct_sum_all(ct_mul(cn, p3)));
    ck_assert_int_eq(ct_backward(loss), CT_OK);
    ct_tensor *gw[8];
    for (int i = 0; i < 4 * L; i++) gw[i] = ct_clone(ct_grad(rnn->params[i]));
    ct_tensor *gh0 = ct_clone(ct_grad(h0)), *gc0 = c0 ? ct_clone(ct_grad(c0)) : NULL;
    /* fused, plain input (through ct_embedding) */
    ct_module_zero_grad(rnn);
    ct_zero_grad(h0);
    if (c0) ct_zero_grad(c0);
    ct_tensor *out2, *hn2, *cn2;
    ck_assert_int_eq(ct_rnn_forward(rnn, x, lengths, h0, c0, NULL, &out2, &hn2, &cn2), CT_OK);
    loss = ct_add(ct_sum_all(ct_mul(out2, p1)), ct_sum_all(ct_mul(hn2, p2)));
    if (cn2) loss = ct_add(loss, ct_sum_all(ct_mul(cn2, p3)));
    ck_assert_int_eq(ct_backward(loss), CT_OK);
    /* cells */
    ct_tensor *outr, *hnr, *cnr;
    reference_layers(rnn, cells, xr, lens, h0r, c0r, &outr, &hnr, &cnr);
    loss = ct_add(ct_sum_all(ct_mul(outr, p1)), ct_sum_all(ct_mul(hnr, p2)));
    if (cnr) loss = ct_add(loss, ct_sum_all(ct_mul(cnr, p3)));
    ck_assert_int_eq(ct_backward(loss), CT_OK);
    tu_assert_tensors_close(out, outr, 1e-5, 1e-4);
    tu_assert_tensors_close(out2, outr, 1e-5, 1e-4);
    tu_assert_tensors_close(hn, hnr, 1e-5, 1e-4);
    if (cn) tu_assert_tensors_close(cn, cnr, 1e-5, 1e-4);
    tu_assert_tensors_close(ct_grad(emb), ct_grad(emb3), 1e-4, 1e-4);
    tu_assert_tensors_close(ct_grad(emb2), ct_grad(emb3), 1e-4, 1e-4);
    tu_assert_tensors_close(gh0, ct_grad(h0r), 1e-5, 1e-4);
    tu_assert_tensors_close(ct_grad(h0), ct_grad(h0r), 1e-5, 1e-4);
    if (c0) tu_assert_tensors_close(gc0, ct_grad(c0r), 1e-5, 1e-4);
    if (c0) tu_assert_tensors_close(ct_grad(c0), ct_grad(c0r), 1e-5, 1e-4);
    const char *names[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
    for (int l = 0; l < L; l++)
        for (int k = 0; k < 4; k++) {
            ct_tensor *want = ct_grad(ct_module_param(cells[l], names[k]));
            tu_assert_tensors_close(gw[l * 4 + k], want, 1e-4, 1e-4);
            tu_assert_tensors_close(ct_grad(rnn->params[l * 4 + k]), want, 1e-4, 1e-4);
        }
    for (int l = 0; l < L; l++) ct_module_free(cells[l]);
    ct_module_free(rnn);
    ct_ctx_free(ctx);
}
END_TEST

Suite *models_suite(void) {
    Suite *s = suite_create("models");
    TCase *tc = tcase_create("composer");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_config_defaults);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_config_json_roundtrip);
    tcase_add_test(tc, test_config_json_errors);
    tcase_add_test(tc, test_config_describe_diff);
    tcase_add_test(tc, test_model_names_shapes);
    tcase_add_loop_test(tc, test_golden_pytorch, 0, (int)(sizeof GOLDEN / sizeof *GOLDEN));
    tcase_add_loop_test(tc, test_loss_hand_built_tokens, 0, 2);
    tcase_add_test(tc, test_loss_hand_built_roll);
    tcase_add_loop_test(tc, test_gradients_reach_every_parameter, 0, 4);
    tcase_add_loop_test(tc, test_learns_pattern, 0, 2);
    tcase_add_test(tc, test_roll_learns_and_bias_init);
    tcase_add_test(tc, test_output_bias_tokens_and_errors);
    tcase_add_test(tc, test_forward_and_loss_errors);
    tcase_add_loop_test(tc, test_checkpoint_roundtrip, 0, 2);
    tcase_add_test(tc, test_checkpoint_refusals);
    tcase_add_loop_test(tc, test_step_linear_threads, 0, 3);
    tcase_add_loop_test(tc, test_blocked_backward, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}
