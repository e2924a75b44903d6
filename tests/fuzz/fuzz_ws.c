/*
 * fuzz_ws.c — libFuzzer target for the WebSocket engine (broker/gateway/ws.c
 * over wslay): the frames a browser sends on /ws after the upgrade.
 *
 * The engine is sans-I/O, so the target is the engine alone: input bytes are
 * fed in pieces whose size comes from the first byte, every message delivered
 * is read in full and echoed back (as the endpoint answers), and output goes
 * to a sink. Masking, fragmentation, control frames, close codes, UTF-8 of
 * text frames and the message-size limit are all reachable.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "broker/gateway/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

struct fuzz_ws {
    rn_ws *ws;
    unsigned echoes;
};

static void on_message(void *arg, bool text, const uint8_t *data, size_t len)
{
    struct fuzz_ws *f = arg;
    for (size_t i = 0; i < len; i++)
        sink += data[i];
    /* Answer the first few, as the endpoint does, so sending while reading is
     * exercised too; bounded so one input cannot make the run slow. */
    if (f->echoes++ < 8)
        rn_ws_send(f->ws, text, data, len);
}

static int on_write(void *arg, const uint8_t *data, size_t len)
{
    (void)arg;
    if (len)
        sink += data[len - 1];
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 61 + 1;
    data++;
    size--;

    struct fuzz_ws f = {0};
    rn_ws_cbs cbs = {.on_message = on_message, .write = on_write};
    if (rn_ws_new(&f.ws, 4096, &cbs, &f) < 0)
        return 0;
    size_t off = 0;
    while (off < size && !rn_ws_done(f.ws)) {
        size_t len = size - off < step ? size - off : step;
        if (rn_ws_feed(f.ws, data + off, len) < 0)
            break;
        off += len;
    }
    if (!rn_ws_close_sent(f.ws))
        rn_ws_close(f.ws, RN_WS_NORMAL, "bye");
    uint16_t code;
    rn_ws_close_received(f.ws, &code);
    rn_ws_free(f.ws);
    return 0;
}
