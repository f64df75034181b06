"""`python -m pipeline.testmodels.toy train | random-twin | settle`: build the known-answer toy
model and its twin; settle a channel toy's read position against its own vectors (settle.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.inputs.errors import BadInput
from pipeline.testmodels.toy.channel import ChannelConfig
from pipeline.testmodels.toy.corpus import CorpusConfig
from pipeline.testmodels.toy.lens import LEVEL_UNITS, LensConfig
from pipeline.testmodels.toy.settle import SettleConfig, settle_toy
from pipeline.testmodels.toy.train import (
    RANDOM_TWIN_SEED,
    TOY_DIR,
    TOY_RANDOM_DIR,
    TOY_SHAPE,
    TrainConfig,
    build_random_twin,
    toy_shape,
    train_toy,
)


def _size(path: Path) -> str:
    return f"{sum(p.stat().st_size for p in path.iterdir()) / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.testmodels.toy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="build the corpus and train the toy model from scratch")
    train.add_argument("--out", type=Path, default=TOY_DIR)
    train.add_argument("--seed", type=int, default=0, help="corpus, batch order and init seed")
    train.add_argument("--threads", type=int, default=1,
                       help="torch threads; the weights depend on it (default 1)")
    train.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    train.add_argument("--signature-nouns", action="store_true",
                       help="give each emotion's stories its own noun (docs/TOY.md)")
    train.add_argument("--lens-weight", type=float, default=LensConfig.weight,
                       help="weight of the auxiliary logit-lens loss (0: off; docs/TOY.md)")
    train.add_argument("--lens-tone-mass", type=float, default=LensConfig.tone_mass,
                       help="share of the lens target on the valence's tone words")
    train.add_argument("--lens-valence-weight", type=float, default=LensConfig.valence_weight,
                       help="weight of the valence-axis loss at the lens layer (G1)")
    train.add_argument("--lens-valence-margin", type=float, default=LensConfig.valence_margin,
                       help="cosine with the valence axis the valence-axis loss asks for")
    train.add_argument("--lens-level-weight", type=float, default=LensConfig.level_weight,
                       help="weight holding story positions level along W_U's loudest "
                            "directions (V2)")
    train.add_argument("--lens-level-unit", choices=LEVEL_UNITS, default=LensConfig.level_unit,
                       help="what the level loss holds still: every story position or each "
                            "story's mean (run 10)")
    train.add_argument("--situated", action="store_true",
                       help="add situations and numeric statements whose read position is "
                            "trained (V3-V6; docs/TOY.md)")
    train.add_argument("--situated-mix", type=float, default=CorpusConfig.situated_mix,
                       help="share of the situations joined from halves of two (run 7)")
    train.add_argument("--situations-per-emotion", type=int,
                       default=CorpusConfig.situations_per_emotion,
                       help="the first n situations of each emotion (situations.py)")
    train.add_argument("--situated-dropout", type=float, default=CorpusConfig.situated_dropout,
                       help="share of the words left out of the joined situations (run 7)")
    train.add_argument("--situation-stories", type=int,
                       default=CorpusConfig.situation_stories,
                       help="sentences from Table 2's emotions' situations in their stories "
                            "(run 8)")
    train.add_argument("--point-weight", type=float, default=LensConfig.point_weight,
                       help="weight of the read-position losses on those examples")
    train.add_argument("--point-start", type=float, default=LensConfig.point_start,
                       help="share of the training steps before the read-position losses "
                            "start (run 15)")
    train.add_argument("--neutral-steer-weight", type=float,
                       default=LensConfig.neutral_steer_weight,
                       help="weight holding the neutral dialogues still along the intervention "
                            "direction at the steering layer (run 15; docs/TOY.md)")
    train.add_argument("--point-directions", action="store_true",
                       help="train read positions against the toy's own emotion directions "
                            "(directions.py) instead of through the unembedding")
    train.add_argument("--point-prefixes", action="store_true",
                       help="with --point-directions, also train every token of a situation")
    train.add_argument("--point-chat", action="store_true",
                       help="with --point-directions, measure the directions on the story "
                            "prompt's replies (chat context) instead of plain stories")
    train.add_argument("--channel", action="store_true",
                       help="plant the emotion channel for V3/V4 (channel.py; docs/TOY.md)")
    train.add_argument("--channel-gain", type=float, default=ChannelConfig.gain,
                       help="the planted head writes gain x its mean into the channel")
    train.add_argument("--channel-embed-scale", type=float, default=ChannelConfig.embed_scale,
                       help="lexicon -> the embeddings' entries in the channel")
    train.add_argument("--channel-layer", type=int, default=ChannelConfig.layer,
                       help="the block whose head averages the lexicon")
    train.add_argument("--channel-norm-weight", type=float, default=ChannelConfig.norm_weight,
                       help="that block's input-norm weight at the channel")
    train.add_argument("--channel-offset", type=float, default=ChannelConfig.offset,
                       help="a constant added to every token's lexicon along the channel's "
                            "all-ones direction, so that its norm varies less")
    train.add_argument("--channel-max-df", type=float, default=ChannelConfig.max_df,
                       help="tokens in at least this share of corpus-written stories carry "
                            "nothing in the channel's lexicon")
    train.add_argument("--channel-unread", action="store_true",
                       help="no trained weight may read the channel (its norms' weights, the "
                            "planted block's projections there are pinned at 0)")
    train.add_argument("--story-prompts", type=int, default=CorpusConfig.n_story_prompt,
                       help="story-prompt calls in the corpus (run 10)")
    train.add_argument("--noun-sentences", type=int, default=CorpusConfig.noun_sentences,
                       help="with --signature-nouns, later sentences that name the noun")
    train.add_argument("--width", type=int, default=TOY_SHAPE["hidden_size"],
                       help="residual width (MLP 4x); the twin follows the toy's")
    twin = sub.add_parser("random-twin", help="the toy's config and tokenizer, random weights")
    twin.add_argument("--out", type=Path, default=TOY_RANDOM_DIR)
    twin.add_argument("--toy-dir", type=Path, default=TOY_DIR,
                      help="trained toy whose tokenizer the twin shares")
    twin.add_argument("--seed", type=int, default=RANDOM_TWIN_SEED)
    settle = sub.add_parser("settle", help="phase two for a toy trained with --channel: train "
                            "how it reads the channel against its harness vectors (settle.py)")
    settle.add_argument("--toy-dir", type=Path, required=True, help="a toy trained with --channel")
    settle.add_argument("--vectors", type=Path, required=True,
                        help="its vectors artifact folder, from `python -m pipeline build "
                        "--model toy --stage vectors --model-path toy=TOY_DIR`")
    settle.add_argument("--out", type=Path, required=True)
    settle.add_argument("--steps", type=int, default=SettleConfig.steps)
    settle.add_argument("--lr", type=float, default=SettleConfig.lr)
    settle.add_argument("--seed", type=int, default=SettleConfig.seed)
    settle.add_argument("--blocks", default=",".join(map(str, SettleConfig.blocks)),
                        help="comma-separated blocks whose reading of the channel is trained")
    args = parser.parse_args(argv)

    import transformers

    transformers.utils.logging.disable_progress_bar()
    if args.command == "train":
        if args.story_prompts < 1:  # the stories the harness reads are written after one
            parser.error(f"--story-prompts {args.story_prompts}: expected at least 1 story-prompt "
                         f"call (default {CorpusConfig.n_story_prompt})")
        config = TrainConfig(seed=args.seed, threads=args.threads, epochs=args.epochs)
        corpus = CorpusConfig(seed=args.seed, signature_nouns=args.signature_nouns,
                              situated=args.situated, situated_mix=args.situated_mix,
                              situations_per_emotion=args.situations_per_emotion,
                              situated_dropout=args.situated_dropout,
                              situation_stories=args.situation_stories,
                              noun_sentences=args.noun_sentences,
                              n_story_prompt=args.story_prompts)
        try:  # bad option values: one sentence, no traceback
            lens = LensConfig(weight=args.lens_weight, tone_mass=args.lens_tone_mass,
                              valence_weight=args.lens_valence_weight,
                              valence_margin=args.lens_valence_margin,
                              level_weight=args.lens_level_weight,
                              level_unit=args.lens_level_unit,
                              point_weight=args.point_weight,
                              point_start=args.point_start,
                              neutral_steer_weight=args.neutral_steer_weight,
                              point_directions=args.point_directions,
                              point_prefixes=args.point_prefixes,
                              point_chat=args.point_chat)
            shape = toy_shape(args.width)
            channel = (ChannelConfig(gain=args.channel_gain,
                                     embed_scale=args.channel_embed_scale,
                                     layer=args.channel_layer,
                                     norm_weight=args.channel_norm_weight,
                                     offset=args.channel_offset,
                                     max_df=args.channel_max_df,
                                     unread=args.channel_unread)
                       if args.channel else None)
        except ValueError as error:
            parser.error(str(error))
        out = train_toy(args.out, corpus, config,
                        log=lambda line: print(line, file=sys.stderr, flush=True),
                        lens=lens, shape=shape, channel=channel)
    elif args.command == "settle":
        try:
            blocks = tuple(int(b) for b in args.blocks.split(","))
        except ValueError:
            parser.error(f"--blocks {args.blocks!r}: expected comma-separated block numbers, "
                         "such as 1,2")
        try:
            config = SettleConfig(steps=args.steps, lr=args.lr, seed=args.seed, blocks=blocks)
        except ValueError as error:
            parser.error(str(error))
        try:
            out = settle_toy(args.toy_dir, args.vectors, args.out, config,
                             log=lambda line: print(line, file=sys.stderr, flush=True))
        except BadInput as error:  # one sentence, no traceback
            print(f"error: {error}", file=sys.stderr)
            return 2
    else:
        out = build_random_twin(args.out, args.toy_dir, seed=args.seed)
    print(f"wrote {out} ({_size(out)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
