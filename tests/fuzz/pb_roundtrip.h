/* tests/fuzz/pb_roundtrip.h - what the fuzz targets check of a protobuf message they reach:
 * whatever protoc-c unpacks from the bytes packs again to exactly its computed size (no
 * overrun, no short write). Included by the targets (each is its own program). */
#ifndef WD_FUZZ_PB_ROUNDTRIP_H
#define WD_FUZZ_PB_ROUNDTRIP_H

#include "engine/base/util.h"

#include <stdlib.h>

#include <protobuf-c/protobuf-c.h>

static inline void pb_roundtrip(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, p);
    if (m == NULL)
        return;
    size_t sz = protobuf_c_message_get_packed_size(m);
    uint8_t *out = xmalloc(sz + 1);
    if (protobuf_c_message_pack(m, out) != sz)
        abort();
    free(out);
    protobuf_c_message_free_unpacked(m, NULL);
}

#endif
