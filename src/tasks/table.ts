/**
 * The task table: one entry per kind of data graft learns from. The public API (src/index.ts), and
 * through it the CLI and `graft report`, find the entry for a data path or a model folder here and
 * nowhere else. Adding a task is adding an entry (an object implementing tasks/types.ts `Task`).
 *
 * Data detection: numeric CSV, images and audio exclude each other; the text entries (classification,
 * pairs, NER) all take text files, and the `task` option (training) or the model's graft.json
 * (evaluation, prediction) picks among them.
 */
import { GraftError } from '../errors.ts';
import { type ModelCard, readCard } from '../model/folder.ts';
import { audioTask } from './audio.ts';
import { csvTask } from './csv.ts';
import { imagesTask } from './images.ts';
import { nerTask } from './ner.ts';
import { pairTask } from './pair.ts';
import { textTask } from './text.ts';
import type { Task, TaskId, TextTask } from './types.ts';

/** Every entry. Order matters only among entries that detect the same data: the first is the default. */
export const TASKS: readonly Task[] = [csvTask, imagesTask, audioTask, textTask, pairTask, nerTask];

/** The entry with this id. */
export function taskById(id: TaskId): Task {
  return TASKS.find((t) => t.id === id)!;
}

/** The entries whose data kind the path holds (several for text files). */
export function tasksForData(path: string): Task[] {
  return TASKS.filter((t) => t.detect(path));
}

/** The entry that trains on this data with the `task` option (classify by default). */
export function taskForTraining(data: string, task: TextTask = 'classify'): Task {
  const t = tasksForData(data).find((e) => e.textTask === task);
  if (!t) throw new GraftError('E_BAD_OPTION', `--task ${task} needs text data (CSV/JSONL, or CoNLL for ner); ${data} is not`, 'Pass a text file.');
  return t;
}

/** The entry that trained a model (from its graft.json). */
export function taskForModel(card: ModelCard): Task {
  const t = TASKS.find((e) => e.owns(card));
  if (!t) throw new GraftError('E_MODEL_CORRUPT', `graft.json has an input kind no task takes (${card.input.kind})`, 'Train the model again with this graft.');
  return t;
}

/**
 * The entry to evaluate or predict a model folder on data: by the data's kind, and among the text
 * entries by the model's graft.json. When none owns the model, the data's first entry answers (with its
 * own error about the mismatch).
 */
export function taskForModelData(dir: string, data: string): Task {
  const found = tasksForData(data);
  if (found.length === 1) return found[0]!;
  const card = readCard(dir);
  return found.find((t) => t.owns(card)) ?? found[0] ?? taskForModel(card);
}
