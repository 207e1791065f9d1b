"""The plug-ins that ship with the package, as lazy ``"module:attr"`` targets (listing them imports no torch)."""

BUILTINS: dict[str, dict[str, str]] = {
    "retriever": {
        "zs": "retrievers.dual_encoder:zs",
        "cocoft": "retrievers.dual_encoder:cocoft",
        "chatir": "retrievers.dual_encoder:chatir",
        "clip": "retrievers.dual_encoder:clip",
        "oracle": "retrievers.fakes:build_oracle",
        "random": "retrievers.fakes:build_random",
    },
    "questioner": {},
    "answerer": {},
    "benchmark": {
        "visdial-val": "benchmarks.known:load_visdial_val",
        "chatgpt-blip2": "benchmarks.known:load_chatgpt_blip2",
        "human-blip2": "benchmarks.known:load_human_blip2",
        "flan-blip2": "benchmarks.known:load_flan_blip2",
        "chatir-file": "benchmarks.chatir:load_chatir_benchmark",
    },
    "fixture": {
        "tiny-blip": "retrievers.tiny:write_tiny_blip",
        "tiny-clip": "retrievers.tiny:write_tiny_clip",
        "synthetic-benchmark": "benchmarks.synthetic:write_synthetic_benchmark",
    },
}
