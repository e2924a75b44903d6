#!/usr/bin/python3
# make_kafka_python.py — write the golden batches of test_codec.c with a real
# Kafka client's encoder: python3-kafka's DefaultRecordBatchBuilder (Debian's
# python3-kafka 2.0.2; snappy, lz4 and zstd through python3-snappy,
# python3-lz4 and python3-zstandard). One file per codec, the same 20 records:
#   key "key-<i>", value ("value-<i> " * 200), timestamp 1700000000000 + i,
#   record 3 with header ("h", b"v3"), records 5 and 6 with a null key.
# kafka-python writes snappy in snappy-java's (xerial) framing, blocks of
# 32 KiB, so the ~40 KB of records make two blocks. Run: ./make_kafka_python.py
import sys
from kafka.record.default_records import DefaultRecordBatchBuilder as B

CODECS = {"gzip": B.CODEC_GZIP, "snappy": B.CODEC_SNAPPY, "lz4": B.CODEC_LZ4,
          "zstd": B.CODEC_ZSTD}

for name, codec in CODECS.items():
    b = B(magic=2, compression_type=codec, is_transactional=False,
          producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i in range(20):
        key = None if i in (5, 6) else b"key-%d" % i
        headers = [("h", b"v3")] if i == 3 else []
        b.append(i, 1700000000000 + i, key, (b"value-%d " % i) * 200, headers)
    out = bytes(b.build())
    assert out[22] & 7 == codec, name  # compressed, not sent plain
    with open("kafka_python_%s.bin" % name, "wb") as f:
        f.write(out)
    print(name, len(out), file=sys.stderr)
