"""The plug-ins that ship with the package, as lazy ``"module:attr"`` targets (listing them imports no torch)."""

BUILTINS: dict[str, dict[str, str]] = {
    "retriever": {
        "zs": "retrievers.dual_encoders.retriever:zs",
        "cocoft": "retrievers.dual_encoders.retriever:cocoft",
        "cocoft-large": "retrievers.dual_encoders.retriever:cocoft_large",
        "chatir": "retrievers.dual_encoders.retriever:chatir",
        "clip": "retrievers.dual_encoders.retriever:clip",
        "dar": "retrievers.dar.retriever:build_dar",
        "adafuse": "retrievers.adafuse.retriever:build_adafuse",
        "oracle": "retrievers.reference:build_oracle",
        "random": "retrievers.reference:build_random",
    },
    "questioner": {
        "flan": "simulators.hf.bots:build_flan_questioner",
        "hf-chat": "simulators.hf.bots:build_hf_chat_questioner",
        "openai": "simulators.openai_compatible.bots:build_openai_questioner",
        "plugir": "simulators.plugir.questioner:build_plugir",
        "replay": "simulators.replay:build_replay_questioner",
        "scripted": "harness.fixtures.scripted:build_scripted_questioner",
    },
    "answerer": {
        "blip2": "simulators.hf.bots:build_blip2_answerer",
        "openai": "simulators.openai_compatible.bots:build_openai_answerer",
        "replay": "simulators.replay:build_replay_answerer",
        "scripted": "harness.fixtures.scripted:build_scripted_answerer",
    },
    "captioner": {
        "blip2": "simulators.hf.bots:build_blip2_captioner",
        "openai": "simulators.openai_compatible.bots:build_openai_captioner",
    },
    "generator": {
        "hf-seq2seq": "simulators.hf.backends:Seq2SeqGenerator",
        "hf-chat": "simulators.hf.backends:CausalChatGenerator",
        "openai": "simulators.openai_compatible.backend:OpenAIChatGenerator",
        "scripted": "harness.fixtures.scripted:ScriptedGenerator",
    },
    "benchmark": {
        "visdial-val": "benchmarks.known:load_visdial_val",
        "chatgpt-blip2": "benchmarks.known:load_chatgpt_blip2",
        "human-blip2": "benchmarks.known:load_human_blip2",
        "flan-blip2": "benchmarks.known:load_flan_blip2",
        "chatir-file": "benchmarks.known:load_file_benchmark",
    },
    "fixture": {
        "tiny-blip": "harness.fixtures.tiny_encoders:write_tiny_blip",
        "tiny-clip": "harness.fixtures.tiny_encoders:write_tiny_clip",
        "synthetic-benchmark": "harness.fixtures.synthetic_benchmark:write_synthetic_benchmark",
        "tiny-flan-t5": "harness.fixtures.tiny_bot_models:write_tiny_flan_t5",
        "tiny-causal-lm": "harness.fixtures.tiny_bot_models:write_tiny_causal_lm",
        "tiny-blip2": "harness.fixtures.tiny_bot_models:write_tiny_blip2",
        "tiny-sd3": "harness.fixtures.tiny_diffusion:write_tiny_sd3",
        "tiny-sd21": "harness.fixtures.tiny_diffusion:write_tiny_sd21",
        "tiny-sdxl": "harness.fixtures.tiny_diffusion:write_tiny_sdxl",
        # Full-size architectures with random weights (GPU benchmarks without downloads; gigabytes each).
        "random-blip-base": "harness.fixtures.full_size:write_random_blip_base",
        "random-flan-t5-xl": "harness.fixtures.full_size:write_random_flan_t5_xl",
        "random-blip2-flan-t5-xl": "harness.fixtures.full_size:write_random_blip2_flan_t5_xl",
        "random-sd3-medium": "harness.fixtures.full_size:write_random_sd3_medium",
    },
}

# Named groups of the entries above: ``--benchmark all`` runs every published ChatIR benchmark.
BUILTIN_SUITES: dict[str, dict[str, str]] = {
    "benchmark": {"all": "benchmarks.known:KNOWN_BENCHMARKS"},
}
