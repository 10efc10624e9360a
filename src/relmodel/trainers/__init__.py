"""Training stages, laid out the way TRL lays out its trainers: per stage one settings dataclass and
one entry point (`run(params) -> metrics`, `main(argv)`), reward functions as plain callables.

    base        build the tiny model (or import a path / hub / GGUF model) -> <output>/model
    sft         TRL SFTTrainer on label + CoT completions (or label only: the baseline row)
    sampling    pass@N sampling and the paper's DPO pair rule (the `samples` step: tasks.sampling)
    dpo         TRL DPOTrainer against the SFT model
    difficulty  group accuracy per prompt, band filter, class balance (the `difficulty` step)
    grpo        rounds of difficulty-filtered, class-balanced TRL GRPOTrainer
"""
