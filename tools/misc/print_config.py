"""Print a config after inheritance and --cfg-options: ``python tools/misc/print_config.py CONFIG``."""
import argparse

from mmengine.config import Config, DictAction


def main() -> None:
    parser = argparse.ArgumentParser(description='Print the fully resolved config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries')
    args = parser.parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    print(cfg.pretty_text)


if __name__ == '__main__':
    main()
