/**
 * Trainers for the attacks that train models of their own (LiRA's shadows, extraction surrogates): a
 * fresh network with a given architecture and training recipe.
 */
import { type LabelledData, Network, type TrainOptions, train } from '../ml/index.js';
import { type GradientModel, networkModel } from './model.js';

/**
 * A trainer making a fresh copy of `template`'s architecture (and preprocessing), initialised with the
 * seed, trained on the data with `options`.
 *
 * @example
 * ```ts
 * const r = await liraAttack(model, members, nonMembers, { shadows: 8, trainShadow: networkTrainer(net, { epochs: 20 }) });
 * ```
 */
export function networkTrainer(
  template: Network,
  options: TrainOptions = {},
): (data: LabelledData, seed: number) => Promise<GradientModel & { network: Network }> {
  return async (data, seed) => {
    const net = new Network({
      inputs: template.inputs,
      hidden: template.hidden,
      activation: template.activation,
      tempered: template.tempered,
      classes: template.classes,
      head: template.head,
      rng: seed,
      preprocessing: template.preprocessing,
    });
    await train(net, data, { ...options, seed });
    return Object.assign(networkModel(net), { network: net });
  };
}
