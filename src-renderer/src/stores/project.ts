import { defineStore } from 'pinia';
import { ref } from 'vue';
import { api } from '../api';
import type { OpOutput } from '../api/client';

type ProjectInfo = NonNullable<OpOutput<'project.current'>>;
type RecentProject = OpOutput<'project.listRecent'>['projects'][number];
type DefectClass = OpOutput<'classes.list'>['classes'][number];

export type ViewName = 'projects' | 'import' | 'label' | 'train' | 'review' | 'evaluate' | 'report';

/** The open project, its defect classes, and which view is showing. */
export const useProjectStore = defineStore('project', () => {
  const current = ref<ProjectInfo | null>(null);
  const recent = ref<RecentProject[]>([]);
  const classes = ref<DefectClass[]>([]);
  const view = ref<ViewName>('projects');
  const loaded = ref(false);

  async function refresh(): Promise<void> {
    current.value = await api().call('project.current', {});
    if (current.value) await refreshClasses();
    loaded.value = true;
  }
  async function refreshRecent(): Promise<void> {
    recent.value = (await api().call('project.listRecent', {})).projects;
  }
  async function refreshClasses(): Promise<void> {
    classes.value = (await api().call('classes.list', {})).classes;
  }
  async function create(name: string, dir?: string): Promise<void> {
    current.value = await api().call('project.create', dir ? { name, dir } : { name });
    await refreshClasses();
    view.value = 'import';
  }
  async function open(path: string): Promise<void> {
    current.value = await api().call('project.open', { path });
    await refreshClasses();
    view.value = current.value.imageCount > 0 ? 'label' : 'import';
  }
  async function close(): Promise<void> {
    await api().call('project.close', {});
    current.value = null;
    classes.value = [];
    view.value = 'projects';
    await refreshRecent();
  }
  async function createClass(name: string): Promise<DefectClass> {
    const cls = await api().call('classes.create', { name });
    await refreshClasses();
    return cls;
  }

  return {
    current,
    recent,
    classes,
    view,
    loaded,
    refresh,
    refreshRecent,
    refreshClasses,
    create,
    open,
    close,
    createClass,
  };
});
