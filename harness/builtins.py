"""The plug-ins that ship with the package, as lazy ``"module:attr"`` targets (listing them imports no torch)."""

BUILTINS: dict[str, dict[str, str]] = {
    "retriever": {
        "zs": "retrievers.dual_encoder:zs",
        "cocoft": "retrievers.dual_encoder:cocoft",
        "chatir": "retrievers.dual_encoder:chatir",
        "clip": "retrievers.dual_encoder:clip",
        "dar": "retrievers.dar:build_dar",
        "adafuse": "retrievers.dar:build_adafuse",
        "oracle": "retrievers.fakes:build_oracle",
        "random": "retrievers.fakes:build_random",
    },
    "questioner": {
        "flan": "simulators.hf_bots:build_flan_questioner",
        "hf-chat": "simulators.hf_bots:build_hf_chat_questioner",
        "openai": "simulators.openai_bots:build_openai_questioner",
        "replay": "simulators.fake_bots:build_replay_questioner",
        "scripted": "simulators.fake_bots:build_scripted_questioner",
    },
    "answerer": {
        "blip2": "simulators.hf_bots:build_blip2_answerer",
        "openai": "simulators.openai_bots:build_openai_answerer",
        "replay": "simulators.fake_bots:build_replay_answerer",
        "scripted": "simulators.fake_bots:build_scripted_answerer",
    },
    "generator": {
        "hf-seq2seq": "simulators.hf_backends:Seq2SeqGenerator",
        "hf-chat": "simulators.hf_backends:CausalChatGenerator",
        "openai": "simulators.openai_backend:OpenAIChatGenerator",
        "scripted": "simulators.fake_bots:ScriptedGenerator",
    },
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
        "tiny-flan-t5": "simulators.tiny:write_tiny_flan_t5",
        "tiny-causal-lm": "simulators.tiny:write_tiny_causal_lm",
        "tiny-blip2": "simulators.tiny:write_tiny_blip2",
        "tiny-sd3": "retrievers.tiny_diffusion:write_tiny_sd3",
        "tiny-sd21": "retrievers.tiny_diffusion:write_tiny_sd21",
        "tiny-sdxl": "retrievers.tiny_diffusion:write_tiny_sdxl",
        # Full-size architectures with random weights (GPU benchmarks without downloads; gigabytes each).
        "random-blip-base": "retrievers.cli:write_random_blip_base",
        "random-flan-t5-xl": "simulators.full_size:write_random_flan_t5_xl",
        "random-blip2-flan-t5-xl": "simulators.full_size:write_random_blip2_flan_t5_xl",
        "random-sd3-medium": "retrievers.dar_bench:write_random_sd3_medium",
    },
}
